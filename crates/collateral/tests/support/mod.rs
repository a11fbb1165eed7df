//! A stand-in for Intel PCS and AMD KDS on 127.0.0.1 (port 0), for tests: it serves the real
//! fixture collateral split into the responses the vendors' endpoints give (issuer chains
//! URL-encoded in headers, as Intel does), answers 404 to anything else, and counts requests.
//! Shared with the CLI tests of the `teemesh` crate.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Routes by request target (path and query, exactly as sent).
pub type Routes = HashMap<String, Reply>;

/// A running server; stopped and joined on drop.
pub struct VendorServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl VendorServer {
    /// Binds before returning, so it is ready to accept as soon as this returns.
    pub fn start(routes: Routes) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &routes, &requests);
                    }
                }
            })
        };
        Self {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request targets received so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for VendorServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, routes: &Routes, requests: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let Some(target) = head.split_whitespace().nth(1) else {
        return;
    };
    requests.lock().unwrap().push(target.to_owned());
    let reply = routes.get(target).cloned().unwrap_or(Reply {
        status: 404,
        headers: Vec::new(),
        body: format!("{{\"error\":\"no route for {target}\"}}").into_bytes(),
    });
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures")
        .join(rel)
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as Intel PCS does.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Intel PCS's answers for one fixture's `QuoteCollateralV3` JSON. The FMSPC, TEE and PCK CA in
/// the routes come from the collateral itself, not from the quote.
pub fn intel_routes(collateral_rel: &str) -> Routes {
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(collateral_rel)).unwrap()).unwrap();
    let s = |k: &str| c[k].as_str().unwrap().to_owned();
    let tcb_info: serde_json::Value = serde_json::from_str(&s("tcb_info")).unwrap();
    let tee = tcb_info["id"].as_str().unwrap().to_ascii_lowercase();
    let fmspc = tcb_info["fmspc"].as_str().unwrap().to_ascii_uppercase();
    let pck_crl = hex::decode(s("pck_crl")).unwrap();
    let ca = if pck_crl.windows(9).any(|w| w == b"Processor") {
        "processor"
    } else {
        "platform"
    };
    let mut routes = Routes::new();
    routes.insert(
        format!("/{tee}/certification/v4/tcb?fmspc={fmspc}"),
        Reply::ok(
            format!(
                "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
                s("tcb_info"),
                s("tcb_info_signature")
            )
            .into_bytes(),
        )
        .with_header(
            "TCB-Info-Issuer-Chain",
            &url_encode(&s("tcb_info_issuer_chain")),
        ),
    );
    routes.insert(
        format!("/{tee}/certification/v4/qe/identity"),
        Reply::ok(
            format!(
                "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
                s("qe_identity"),
                s("qe_identity_signature")
            )
            .into_bytes(),
        )
        .with_header(
            "SGX-Enclave-Identity-Issuer-Chain",
            &url_encode(&s("qe_identity_issuer_chain")),
        ),
    );
    routes.insert(
        format!("/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"),
        Reply::ok(pck_crl).with_header(
            "SGX-PCK-CRL-Issuer-Chain",
            &url_encode(&s("pck_crl_issuer_chain")),
        ),
    );
    routes.insert(
        "/IntelSGXRootCA.der".to_owned(),
        Reply::ok(hex::decode(s("root_ca_crl")).unwrap()),
    );
    routes
}

/// AMD KDS's answers for a VCEK fixture and its chain. The product, hwid and SPLs in the VCEK
/// route come from the certificate's own extensions, not from the report.
pub fn amd_routes(vcek_rel: &str, chain_rel: &str) -> Routes {
    let vcek = std::fs::read(fixture(vcek_rel)).unwrap();
    let mut e = attest::Endorsements::new();
    e.add_bytes(vcek_rel, &vcek).unwrap();
    let cert = &e.amd_certs()[0];
    let product = cert.product.clone().unwrap();
    let tcb = cert.vek_tcb();
    let hwid = tcb.hwid.clone().unwrap();
    let hwid = if product == "Turin" {
        hex::encode(&hwid[..8])
    } else {
        hex::encode(&hwid)
    };
    let fmc = tcb.fmc.map(|f| format!("fmcSPL={f}&")).unwrap_or_default();
    let mut routes = Routes::new();
    routes.insert(
        format!(
            "/vcek/v1/{product}/{hwid}?{fmc}blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
            tcb.bootloader.unwrap(),
            tcb.tee.unwrap(),
            tcb.snp.unwrap(),
            tcb.microcode.unwrap()
        ),
        Reply::ok(vcek),
    );
    routes.insert(
        format!("/vcek/v1/{product}/cert_chain"),
        Reply::ok(std::fs::read(fixture(chain_rel)).unwrap()),
    );
    routes
}
