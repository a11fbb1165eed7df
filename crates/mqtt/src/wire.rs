//! The data representations of MQTT (§1.5): integers, variable byte integers, UTF-8 strings and
//! binary data, read from one packet's body with bounds checks and written with length checks.

use bytes::Bytes;

use crate::{Error, MAX_VARIABLE_INTEGER, PacketType};

/// A variable byte integer at the start of `buf`: `Ok(None)` when `buf` ends before its last byte,
/// else its value and length. Longer than 4 bytes or not in its shortest form is malformed
/// ([MQTT-1.5.5-1]), so an integer has exactly one encoding.
pub(crate) fn parse_variable_integer(
    buf: &[u8],
    what: &'static str,
) -> Result<Option<(u32, usize)>, Error> {
    let mut value: u32 = 0;
    for (index, &byte) in buf.iter().enumerate() {
        if index == 4 {
            return Err(Error::MalformedVariableInteger { what });
        }
        value |= u32::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            // A last byte of 0 after the first means a shorter encoding existed.
            if index > 0 && byte == 0 {
                return Err(Error::MalformedVariableInteger { what });
            }
            return Ok(Some((value, index + 1)));
        }
    }
    if buf.len() >= 4 {
        return Err(Error::MalformedVariableInteger { what });
    }
    Ok(None)
}

/// Appends `value` (at most [`MAX_VARIABLE_INTEGER`]) as a variable byte integer.
pub(crate) fn put_variable_integer(out: &mut Vec<u8>, value: u32) {
    debug_assert!(value <= MAX_VARIABLE_INTEGER);
    let mut rest = value;
    loop {
        let byte = (rest & 0x7F) as u8;
        rest >>= 7;
        if rest == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Checks a string against MQTT's rules for UTF-8 encoded strings: Rust strings are already
/// UTF-8 without surrogates, so what is left is U+0000 and the two-byte length.
pub(crate) fn check_string(text: &str, what: &'static str) -> Result<(), Error> {
    if text.len() > usize::from(u16::MAX) {
        return Err(Error::FieldTooLong {
            what,
            len: text.len(),
        });
    }
    if text.contains('\0') {
        return Err(Error::NullCharacter { what });
    }
    Ok(())
}

/// Appends a UTF-8 encoded string: a two-byte length, then the bytes.
pub(crate) fn put_string(out: &mut Vec<u8>, text: &str, what: &'static str) -> Result<(), Error> {
    check_string(text, what)?;
    put_binary(out, text.as_bytes(), what)
}

/// Appends binary data: a two-byte length, then the bytes.
pub(crate) fn put_binary(out: &mut Vec<u8>, data: &[u8], what: &'static str) -> Result<(), Error> {
    let len = u16::try_from(data.len()).map_err(|_| Error::FieldTooLong {
        what,
        len: data.len(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Reads the fields of one packet's body; running out of bytes is [`Error::Truncated`].
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    packet: PacketType,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], packet: PacketType) -> Self {
        Self { buf, packet }
    }

    pub(crate) fn packet(&self) -> PacketType {
        self.packet
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `len` bytes.
    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if len > self.buf.len() {
            return Err(Error::Truncated {
                packet: self.packet,
                what,
            });
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    /// The next `len` bytes as a reader of their own (a property list).
    pub(crate) fn sub_reader(&mut self, len: usize, what: &'static str) -> Result<Self, Error> {
        let packet = self.packet;
        Ok(Self::new(self.take(len, what)?, packet))
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let bytes = self.take(2, what)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(crate) fn variable_integer(&mut self, what: &'static str) -> Result<u32, Error> {
        match parse_variable_integer(self.buf, what)? {
            Some((value, len)) => {
                self.buf = &self.buf[len..];
                Ok(value)
            }
            None => Err(Error::Truncated {
                packet: self.packet,
                what,
            }),
        }
    }

    /// Two-byte length, then that many bytes.
    pub(crate) fn binary_slice(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    pub(crate) fn binary(&mut self, what: &'static str) -> Result<Bytes, Error> {
        Ok(Bytes::copy_from_slice(self.binary_slice(what)?))
    }

    /// A UTF-8 encoded string: valid UTF-8 (so no surrogates) and no U+0000.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, Error> {
        let bytes = self.binary_slice(what)?;
        let text = std::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 { what })?;
        if text.contains('\0') {
            return Err(Error::NullCharacter { what });
        }
        Ok(text.to_owned())
    }

    /// Refuses any byte left after the packet's last field.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                packet: self.packet,
                extra: self.buf.len(),
            })
        }
    }
}
