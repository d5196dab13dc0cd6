//! SPDY/3.1 frames (draft-mbelshe-httpbis-spdy-00 §2.2, SPDY/3.1's session flow control
//! frames): parsing from a byte buffer and encoding. Header blocks stay compressed here
//! (`headers.rs` owns the zlib streams, which span the whole connection).

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_INVALID_STREAM: u32 = 2;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;
/// GOAWAY status codes.
pub const GOAWAY_OK: u32 = 0;
pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;

/// Control frames above this are refused (header blocks of a few streams need far less).
pub const MAX_CONTROL: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("SPDY version {0} is not 3")]
    Version(u16),
    #[error("control frame type {ty} of {len} bytes is malformed")]
    Malformed { ty: u16, len: usize },
    #[error("control frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("stream id 0 in a stream frame")]
    ZeroStream,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        flags: u8,
        data: Bytes,
    },
    SynStream {
        stream: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        block: Bytes,
    },
    SynReply {
        stream: u32,
        flags: u8,
        block: Bytes,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Settings {
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        flags: u8,
        block: Bytes,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    /// A control frame type this side does not know: skipped, as the spec asks.
    Unknown {
        ty: u16,
    },
}

/// Take one complete frame off the front of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let w0 = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let flags = buf[4];
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    let control = w0 & 0x8000_0000 != 0;
    if control {
        let version = ((w0 >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        if len > MAX_CONTROL {
            return Err(FrameError::TooLarge(len));
        }
    }
    if buf.len() < 8 + len {
        buf.reserve(8 + len - buf.len());
        return Ok(None);
    }
    buf.advance(8);
    let mut p = buf.split_to(len).freeze();
    if !control {
        let stream = w0 & 0x7fff_ffff;
        if stream == 0 {
            return Err(FrameError::ZeroStream);
        }
        return Ok(Some(Frame::Data { stream, flags, data: p }));
    }
    let ty = (w0 & 0xffff) as u16;
    let bad = || FrameError::Malformed { ty, len };
    let id = |p: &mut Bytes| p.get_u32() & 0x7fff_ffff;
    let f = match ty {
        SYN_STREAM => {
            if len < 10 {
                return Err(bad());
            }
            let stream = id(&mut p);
            let associated = id(&mut p);
            let priority = p.get_u8() >> 5;
            let _slot = p.get_u8();
            if stream == 0 {
                return Err(bad());
            }
            Frame::SynStream { stream, associated, priority, flags, block: p }
        }
        SYN_REPLY | HEADERS => {
            if len < 4 {
                return Err(bad());
            }
            let stream = id(&mut p);
            if ty == SYN_REPLY {
                Frame::SynReply { stream, flags, block: p }
            } else {
                Frame::Headers { stream, flags, block: p }
            }
        }
        RST_STREAM => {
            if len != 8 {
                return Err(bad());
            }
            Frame::RstStream { stream: id(&mut p), status: p.get_u32() }
        }
        SETTINGS => {
            if len < 4 {
                return Err(bad());
            }
            let n = p.get_u32() as usize;
            if p.len() != n.checked_mul(8).ok_or_else(bad)? {
                return Err(bad());
            }
            let entries = (0..n)
                .map(|_| {
                    let w = p.get_u32();
                    ((w >> 24) as u8, w & 0xff_ffff, p.get_u32())
                })
                .collect();
            Frame::Settings { entries }
        }
        PING => {
            if len != 4 {
                return Err(bad());
            }
            Frame::Ping { id: p.get_u32() }
        }
        GOAWAY => {
            if len != 8 {
                return Err(bad());
            }
            Frame::GoAway { last_good: id(&mut p), status: p.get_u32() }
        }
        WINDOW_UPDATE => {
            if len != 8 {
                return Err(bad());
            }
            Frame::WindowUpdate { stream: id(&mut p), delta: p.get_u32() & 0x7fff_ffff }
        }
        _ => Frame::Unknown { ty },
    };
    Ok(Some(f))
}

fn control(out: &mut BytesMut, ty: u16, flags: u8, payload: &[u8]) {
    out.put_u32(0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(ty));
    out.put_u32((u32::from(flags) << 24) | (payload.len() as u32 & 0xff_ffff));
    out.put_slice(payload);
}

/// Append the wire form of `f` to `out`. Data longer than a frame can hold is the caller's
/// to split (see `MAX_DATA`).
pub fn encode(f: &Frame, out: &mut BytesMut) {
    let mut p = BytesMut::new();
    match f {
        Frame::Data { stream, flags, data } => {
            out.put_u32(stream & 0x7fff_ffff);
            out.put_u32((u32::from(*flags) << 24) | (data.len() as u32 & 0xff_ffff));
            out.put_slice(data);
        }
        Frame::SynStream { stream, associated, priority, flags, block } => {
            p.put_u32(*stream);
            p.put_u32(*associated);
            p.put_u8(priority << 5);
            p.put_u8(0);
            p.put_slice(block);
            control(out, SYN_STREAM, *flags, &p);
        }
        Frame::SynReply { stream, flags, block } | Frame::Headers { stream, flags, block } => {
            p.put_u32(*stream);
            p.put_slice(block);
            let ty = if matches!(f, Frame::SynReply { .. }) { SYN_REPLY } else { HEADERS };
            control(out, ty, *flags, &p);
        }
        Frame::RstStream { stream, status } => {
            p.put_u32(*stream);
            p.put_u32(*status);
            control(out, RST_STREAM, 0, &p);
        }
        Frame::Settings { entries } => {
            p.put_u32(entries.len() as u32);
            for (fl, id, v) in entries {
                p.put_u32((u32::from(*fl) << 24) | (id & 0xff_ffff));
                p.put_u32(*v);
            }
            control(out, SETTINGS, 0, &p);
        }
        Frame::Ping { id } => control(out, PING, 0, &id.to_be_bytes()),
        Frame::GoAway { last_good, status } => {
            p.put_u32(*last_good);
            p.put_u32(*status);
            control(out, GOAWAY, 0, &p);
        }
        Frame::WindowUpdate { stream, delta } => {
            p.put_u32(*stream);
            p.put_u32(*delta);
            control(out, WINDOW_UPDATE, 0, &p);
        }
        Frame::Unknown { ty } => control(out, *ty, 0, &[]),
    }
}

/// The largest data frame this side writes.
pub const MAX_DATA: usize = 32 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn round(f: Frame) {
        let mut b = BytesMut::new();
        encode(&f, &mut b);
        // Byte by byte: a partial frame is never taken.
        let all = b.clone();
        let mut part = BytesMut::new();
        for (i, byte) in all.iter().enumerate() {
            part.put_u8(*byte);
            let r = parse(&mut part).unwrap();
            if i + 1 < all.len() {
                assert!(r.is_none(), "{f:?} taken after {} bytes", i + 1);
            } else {
                assert_eq!(r.as_ref(), Some(&f));
            }
        }
        assert!(part.is_empty());
    }

    #[test]
    fn round_trips() {
        round(Frame::Data { stream: 1, flags: FLAG_FIN, data: Bytes::from_static(b"hello") });
        round(Frame::Data { stream: 3, flags: 0, data: Bytes::new() });
        round(Frame::SynStream { stream: 5, associated: 0, priority: 7, flags: FLAG_FIN, block: Bytes::from_static(b"\x01\x02") });
        round(Frame::SynReply { stream: 5, flags: 0, block: Bytes::from_static(b"xyz") });
        round(Frame::Headers { stream: 7, flags: 0, block: Bytes::new() });
        round(Frame::RstStream { stream: 9, status: RST_CANCEL });
        round(Frame::Settings { entries: vec![(0, 4, 100), (1, 7, 65536)] });
        round(Frame::Ping { id: 1 });
        round(Frame::GoAway { last_good: 11, status: GOAWAY_OK });
        round(Frame::WindowUpdate { stream: 0, delta: 1 << 20 });
    }

    #[test]
    fn wire_layout() {
        let mut b = BytesMut::new();
        encode(&Frame::Ping { id: 0x01020304 }, &mut b);
        assert_eq!(&b[..], &[0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4]);
        b.clear();
        encode(&Frame::Data { stream: 1, flags: FLAG_FIN, data: Bytes::from_static(b"ab") }, &mut b);
        assert_eq!(&b[..], &[0, 0, 0, 1, 1, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn malformed_is_an_error() {
        let cases: Vec<(&[u8], FrameError)> = vec![
            (&[0x80, 0x02, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1], FrameError::Version(2)),
            (&[0x80, 0x03, 0, 6, 0, 0, 0, 3, 0, 0, 0], FrameError::Malformed { ty: 6, len: 3 }),
            (&[0x80, 0x03, 0, 1, 0, 0, 0, 2, 0, 0], FrameError::Malformed { ty: 1, len: 2 }),
            (&[0x80, 0x03, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1], FrameError::Malformed { ty: 3, len: 4 }),
            (&[0x80, 0x03, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9], FrameError::Malformed { ty: 4, len: 4 }),
            (&[0x80, 0x03, 0, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff], FrameError::Malformed { ty: 4, len: 4 }),
            (&[0x80, 0x03, 0, 1, 0, 0xff, 0xff, 0xff], FrameError::TooLarge(0xff_ffff)),
            (&[0, 0, 0, 0, 0, 0, 0, 0], FrameError::ZeroStream),
        ];
        for (bytes, want) in cases {
            let mut b = BytesMut::from(bytes);
            assert_eq!(parse(&mut b).unwrap_err(), want, "{bytes:?}");
        }
        let mut b = BytesMut::from(&[0x80u8, 0x03, 0, 42, 0, 0, 0, 1, 9][..]);
        assert_eq!(parse(&mut b).unwrap(), Some(Frame::Unknown { ty: 42 }));
    }
}
