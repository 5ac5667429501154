//! An HTTP/1.1 chunked-body decoder.

use super::tcp::find;

/// Decodes a `Transfer-Encoding: chunked` body as its bytes arrive (RFC 9112 §7.1), and
/// panics on bad framing: a test must see exactly the bytes the server framed.
#[derive(Debug, Default)]
pub struct Dechunker {
    /// Bytes received and not decoded yet (an incomplete size line or CRLF).
    raw: Vec<u8>,
    pub state: Chunk,
}

#[derive(Debug, Default, PartialEq)]
pub enum Chunk {
    /// Expecting a size line.
    #[default]
    Size,
    /// This many data bytes of the current chunk are still to come.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailer,
    /// The body is complete.
    Done,
}

impl Dechunker {
    /// Decodes `input` (and what was held back before) onto `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.raw.extend_from_slice(input);
        let mut at = 0;
        loop {
            let rest = &self.raw[at..];
            match self.state {
                Chunk::Size | Chunk::Trailer => {
                    let Some(eol) = find(rest, b"\r\n") else {
                        break;
                    };
                    let line = std::str::from_utf8(&rest[..eol]).expect("chunk line is ASCII");
                    at += eol + 2;
                    if self.state == Chunk::Trailer {
                        if line.is_empty() {
                            self.state = Chunk::Done;
                        }
                        continue;
                    }
                    let hex = line.split(';').next().unwrap().trim_end();
                    let size = usize::from_str_radix(hex, 16)
                        .unwrap_or_else(|e| panic!("bad chunk size line {line:?}: {e}"));
                    self.state = if size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if rest.is_empty() {
                        break;
                    }
                    let n = left.min(rest.len());
                    out.extend_from_slice(&rest[..n]);
                    at += n;
                    self.state = if n == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    };
                }
                Chunk::DataEnd => {
                    if rest.len() < 2 {
                        break;
                    }
                    assert_eq!(&rest[..2], b"\r\n", "chunk data not followed by CRLF");
                    at += 2;
                    self.state = Chunk::Size;
                }
                Chunk::Done => {
                    assert!(
                        rest.is_empty(),
                        "bytes after the last chunk: {:?}",
                        String::from_utf8_lossy(rest)
                    );
                    break;
                }
            }
        }
        self.raw.drain(..at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked decoder gives the same body however the bytes are split.
    #[test]
    fn dechunker_decodes_any_split_of_the_input() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
        for cut in 0..=wire.len() {
            for step in [1, 3, wire.len()] {
                let mut d = Dechunker::default();
                let mut out = Vec::new();
                d.feed(&wire[..cut], &mut out);
                for piece in wire[cut..].chunks(step) {
                    d.feed(piece, &mut out);
                }
                assert_eq!(out, b"hello 0123456789abcdef", "cut {cut} step {step}");
                assert_eq!(d.state, Chunk::Done, "cut {cut} step {step}");
            }
        }
    }
}
