//! SPDY/3 header blocks: a count and length-prefixed name/value pairs (several values of a
//! name joined by NUL), zlib-compressed with one stream per direction for the whole session,
//! primed with SPDY/3's dictionary and sync-flushed after every block.

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The most a header block may inflate to (a few stream headers need a few hundred bytes).
pub const MAX_BLOCK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("header block does not inflate: {0}")]
    Inflate(String),
    #[error("header block inflates past {MAX_BLOCK} bytes")]
    TooLarge,
    #[error("header block is truncated or malformed")]
    Malformed,
    #[error("header compression failed: {0}")]
    Deflate(String),
}

/// Name/value pairs, names lowercase (as SPDY requires).
pub type Headers = Vec<(String, String)>;

/// The first value of `name` (names compared without case).
pub fn get<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Serialize pairs (not compressed).
pub fn encode_block(h: &Headers) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u32(h.len() as u32);
    for (n, v) in h {
        b.put_u32(n.len() as u32);
        b.put_slice(n.to_ascii_lowercase().as_bytes());
        b.put_u32(v.len() as u32);
        b.put_slice(v.as_bytes());
    }
    b.to_vec()
}

/// Parse an inflated block; a value with NUL separators becomes several pairs.
pub fn decode_block(b: &[u8]) -> Result<Headers, HeaderError> {
    let mut p = b;
    let mut take = |n: usize| -> Result<&[u8], HeaderError> {
        if p.len() < n {
            return Err(HeaderError::Malformed);
        }
        let (a, rest) = p.split_at(n);
        p = rest;
        Ok(a)
    };
    let u32_of = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
    let n = u32_of(take(4)?);
    let mut out = Vec::new();
    for _ in 0..n {
        let nl = u32_of(take(4)?);
        let name = String::from_utf8_lossy(take(nl)?).to_ascii_lowercase();
        let vl = u32_of(take(4)?);
        let value = String::from_utf8_lossy(take(vl)?).into_owned();
        for v in value.split('\0') {
            out.push((name.clone(), v.to_string()));
        }
    }
    Ok(out)
}

/// The sending side's zlib stream.
pub struct Compressor(Compress);

impl Compressor {
    pub fn new() -> Result<Compressor, HeaderError> {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(DICTIONARY).map_err(|e| HeaderError::Deflate(e.to_string()))?;
        Ok(Compressor(c))
    }

    pub fn compress(&mut self, h: &Headers) -> Result<Bytes, HeaderError> {
        let raw = encode_block(h);
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.0.total_in();
        loop {
            let done = (self.0.total_in() - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            self.0.compress_vec(&raw[done..], &mut out, FlushCompress::Sync).map_err(|e| HeaderError::Deflate(e.to_string()))?;
            // A sync flush is complete when all input is in and the output was not full.
            if (self.0.total_in() - start) as usize == raw.len() && out.len() < out.capacity() {
                return Ok(out.into());
            }
        }
    }
}

/// The receiving side's zlib stream.
pub struct Decompressor(Decompress);

impl Default for Decompressor {
    fn default() -> Self {
        Decompressor(Decompress::new(true))
    }
}

impl Decompressor {
    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        let start = self.0.total_in();
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_BLOCK {
                    return Err(HeaderError::TooLarge);
                }
                out.reserve(out.len().max(1024));
            }
            let (in0, out0) = (self.0.total_in(), self.0.total_out());
            let used = (in0 - start) as usize;
            match self.0.decompress_vec(&block[used..], &mut out, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => return Err(HeaderError::Inflate("the stream ended".into())),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0.set_dictionary(DICTIONARY).map_err(|e| HeaderError::Inflate(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(HeaderError::Inflate(e.to_string())),
            }
            let used = (self.0.total_in() - start) as usize;
            if used == block.len() && out.len() < out.capacity() {
                break;
            }
            if self.0.total_in() == in0 && self.0.total_out() == out0 && out.len() < out.capacity() {
                // Input left that inflates to nothing: truncated or not a sync-flushed block.
                return Err(HeaderError::Malformed);
            }
        }
        if out.len() > MAX_BLOCK {
            return Err(HeaderError::TooLarge);
        }
        decode_block(&out)
    }
}

/// SPDY/3's header compression dictionary (draft 3, §2.6.10.1).
pub const DICTIONARY: &[u8] = b"\
\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\
\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\
\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03\
age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-control\x00\x00\x00\
\x0aconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10con\
tent-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\x00\x00\x00\x0bco\
ntent-md5\x00\x00\x00\x0dcontent-range\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\
\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04\
host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\x00\
\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\
\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authentic\
ate\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\
\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11\
transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\x00\x00\
\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\
\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200\x20OK\x00\x00\x00\x07version\x00\x00\x00\
\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0a\
keep-alive\x00\x00\x00\x06origin1001012012022052063003023033043053063074024054064074084094104\
11412413414415416417502504505203\x20Non-Authoritative\x20Information204\x20No\x20Content301\x20\
Moved\x20Permanently400\x20Bad\x20Request401\x20Unauthorized403\x20Forbidden404\x20Not\x20Fou\
nd500\x20Internal\x20Server\x20Error501\x20Not\x20Implemented503\x20Service\x20UnavailableJan\
\x20Feb\x20Mar\x20Apr\x20May\x20Jun\x20Jul\x20Aug\x20Sept\x20Oct\x20Nov\x20Dec\x2000:00:00\x20\
Mon,\x20Tue,\x20Wed,\x20Thu,\x20Fri,\x20Sat,\x20Sun,\x20GMTchunked,text/html,image/png,image/\
jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatem\
ax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn dictionary_is_spdy3s() {
        // The dictionary id a zlib stream names it by (adler32), as every SPDY/3 peer has it.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in DICTIONARY {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
        assert_eq!(DICTIONARY.len(), 1423);
    }

    #[test]
    fn blocks_round_trip_across_one_stream() {
        let mut c = Compressor::new().unwrap();
        let mut d = Decompressor::default();
        let blocks = [
            h(&[("streamtype", "error")]),
            h(&[("streamtype", "stdout"), ("port", "8080"), ("requestid", "0")]),
            h(&[]),
            h(&[("x-long", &"v".repeat(5000))]),
        ];
        for b in &blocks {
            let z = c.compress(b).unwrap();
            assert_eq!(&d.decompress(&z).unwrap(), b);
        }
    }

    #[test]
    fn multi_values_and_case() {
        let mut raw = encode_block(&h(&[("a", "1\u{0}2")]));
        raw.extend_from_slice(b"trailing");
        let got = decode_block(&raw).unwrap();
        assert_eq!(got, h(&[("a", "1"), ("a", "2")]));
        assert_eq!(get(&got, "A"), Some("1"));
    }

    #[test]
    fn garbage_is_an_error() {
        let mut d = Decompressor::default();
        assert!(d.decompress(b"\x00\x01garbage that is no zlib").is_err());
        assert_eq!(decode_block(&[0, 0, 0, 2, 0, 0, 0, 9, b'a']).unwrap_err(), HeaderError::Malformed);
        assert_eq!(decode_block(&[0, 0]).unwrap_err(), HeaderError::Malformed);
        // A bomb: many zeros compress to little.
        let mut c = Compressor::new().unwrap();
        let z = c.compress(&h(&[("x", &"\0".repeat(MAX_BLOCK * 2))])).unwrap();
        assert!(z.len() < MAX_BLOCK / 4);
        assert_eq!(Decompressor::default().decompress(&z).unwrap_err(), HeaderError::TooLarge);
    }
}
