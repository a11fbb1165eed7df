//! `ReadAhead` under a stream: small reads (as rustls makes) and large ones (which bypass its
//! buffer) see exactly the bytes written, in order, across its 64 KiB reads, then the end.

use mqtt::broker::ReadAhead;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn small_and_large_reads_see_every_byte_then_the_end() {
    let (mut writer, reader) = tokio::io::duplex(256 * 1024);
    let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected = sent.clone();
    let writing = tokio::spawn(async move {
        // Uneven pieces, so reads straddle what each write put in.
        for piece in sent.chunks(7_919) {
            writer.write_all(piece).await.expect("write");
        }
        writer.shutdown().await.expect("shutdown");
    });
    let mut reader = ReadAhead::new(reader);
    let mut got = Vec::new();
    let mut turn = 0usize;
    loop {
        // Mostly rustls-sized reads, every fifth one larger than the read-ahead.
        let mut buf = vec![0u8; if turn % 5 == 4 { 70_000 } else { 4_096 }];
        turn += 1;
        let n = reader.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    writing.await.expect("writer");
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the bytes differ");
    assert!(turn > 10, "the reads were small");
    // The end stays the end.
    assert_eq!(reader.read(&mut [0u8; 16]).await.expect("read"), 0);
}

#[tokio::test]
async fn writes_pass_through() {
    let (near, mut far) = tokio::io::duplex(1024);
    let mut near = ReadAhead::new(near);
    near.write_all(b"PINGREQ").await.expect("write");
    near.flush().await.expect("flush");
    let mut buf = [0u8; 7];
    far.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"PINGREQ");
    far.write_all(b"PINGRESP").await.expect("write");
    let mut back = [0u8; 8];
    near.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"PINGRESP");
}
