//! Newline-delimited JSON framing with a hard line limit.
//!
//! The decoder never fails on content: a line that is not a protocol message comes out as
//! [`Frame::Junk`] so the host can log it verbatim and decide what to do with the worker.
//! Only a line longer than the limit is an error, because buffering it would mean unbounded
//! memory; after that error the stream is unusable and the worker must be replaced.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{HostMessage, WorkerMessage};

/// The default maximum length of one line, in bytes, newline excluded (64 MiB). A response
/// body travels inside one line, so this also bounds a response.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024 * 1024;

/// One line read from a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A well-formed protocol message, with the length of its line in bytes.
    Message {
        /// The decoded message.
        message: WorkerMessage,
        /// Length of the line it came from, newline excluded.
        len: usize,
    },
    /// A line that is not a protocol message (stray output, truncated JSON, unknown type),
    /// decoded lossily as UTF-8, without its newline.
    Junk(String),
    /// A `chunk` of a streamed response: its header line and the raw bytes after it.
    Chunk {
        /// The request it belongs to.
        id: String,
        /// The bytes, as PHP wrote them.
        data: Bytes,
    },
}

/// Why a stream of lines cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A line grew past the limit before its newline arrived.
    #[error("line longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// Serializing a message failed (only for values JSON cannot represent).
    #[error("could not encode message")]
    Encode(#[from] serde_json::Error),
    /// Reading or writing the pipe failed.
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

/// Frames [`WorkerMessage`]s in and [`HostMessage`]s out as newline-delimited JSON.
#[derive(Debug, Clone)]
pub struct NdjsonCodec {
    max_line: usize,
    /// Bytes of the buffer already searched for a newline, so a long line is scanned once.
    scanned: usize,
    /// A chunk header was read; its raw bytes come next.
    pending: Option<(String, usize)>,
}

impl NdjsonCodec {
    /// A codec that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        NdjsonCodec {
            max_line,
            scanned: 0,
            pending: None,
        }
    }

    /// The line limit in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    fn frame(line: &[u8]) -> Frame {
        match serde_json::from_slice::<WorkerMessage>(line) {
            Ok(message) => Frame::Message {
                message,
                len: line.len(),
            },
            Err(_) => Frame::Junk(String::from_utf8_lossy(line).into_owned()),
        }
    }
}

impl Default for NdjsonCodec {
    fn default() -> Self {
        NdjsonCodec::new(DEFAULT_MAX_LINE)
    }
}

impl Decoder for NdjsonCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if let Some((_, len)) = &self.pending {
            if buf.len() < *len {
                buf.reserve(*len - buf.len());
                return Ok(None);
            }
            let (id, len) = self.pending.take().unwrap_or_default();
            let data = buf.split_to(len).freeze();
            return Ok(Some(Frame::Chunk { id, data }));
        }
        let frame = self.decode_line(buf)?;
        if let Some(Frame::Message {
            message: WorkerMessage::Chunk(header),
            ..
        }) = &frame
        {
            // A chunk is bounded like a line.
            if header.len > self.max_line {
                return Err(CodecError::LineTooLong {
                    limit: self.max_line,
                });
            }
            self.pending = Some((header.id.clone(), header.len));
            return self.decode(buf);
        }
        Ok(frame)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            // Output without a final newline before the pipe closed: still reported.
            None if !buf.is_empty() || self.pending.is_some() => {
                self.scanned = 0;
                self.pending = None;
                let rest = buf.split();
                Ok(Some(Frame::Junk(
                    String::from_utf8_lossy(&rest).into_owned(),
                )))
            }
            None => Ok(None),
        }
    }
}

impl NdjsonCodec {
    fn decode_line(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let newline = buf[self.scanned..].iter().position(|b| *b == b'\n');
        match newline {
            Some(offset) => {
                let end = self.scanned + offset;
                self.scanned = 0;
                if end > self.max_line {
                    return Err(CodecError::LineTooLong {
                        limit: self.max_line,
                    });
                }
                let line = buf.split_to(end);
                buf.advance(1);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                Ok(Some(Self::frame(line)))
            }
            None if buf.len() > self.max_line => Err(CodecError::LineTooLong {
                limit: self.max_line,
            }),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }
}

impl Encoder<&HostMessage> for NdjsonCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: &HostMessage, dst: &mut BytesMut) -> Result<(), CodecError> {
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        dst.extend_from_slice(&line);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_raw_bytes_newlines_included() {
        let mut codec = NdjsonCodec::new(64);
        let mut input = b"{\"type\":\"chunk\",\"id\":\"r-1\",\"len\":5}\n".to_vec();
        input.extend_from_slice(b"a\n\x00\xffb");
        input.extend_from_slice(b"{\"type\":\"end\",\"id\":\"r-1\"}\n");
        // Fed one byte at a time, as a pipe may deliver it.
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in input {
            buf.extend_from_slice(&[byte]);
            while let Some(frame) = codec.decode(&mut buf).expect("decode") {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames[0],
            Frame::Chunk {
                id: "r-1".into(),
                data: Bytes::from_static(b"a\n\x00\xffb")
            }
        );
        assert!(matches!(
            &frames[1],
            Frame::Message { message: WorkerMessage::End(end), .. } if end.id == "r-1"
        ));
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn a_chunk_over_the_limit_is_an_error() {
        let mut codec = NdjsonCodec::new(64);
        let (_, err) = decode_all(
            &mut codec,
            b"{\"type\":\"chunk\",\"id\":\"r\",\"len\":65}\n",
        );
        assert!(matches!(err, Some(CodecError::LineTooLong { limit: 64 })));
    }

    fn decode_all(codec: &mut NdjsonCodec, input: &[u8]) -> (Vec<Frame>, Option<CodecError>) {
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(err) => return (frames, Some(err)),
            }
        }
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {}
            Err(err) => return (frames, Some(err)),
        }
        (frames, None)
    }

    #[test]
    fn decodes_messages_and_junk_in_order() {
        let input = b"{\"type\":\"log\",\"message\":\"a\"}\nHello from echo\n{\"type\":\"response\",\"id\":\"r\",\"status\":200}\r\n";
        let (frames, err) = decode_all(&mut NdjsonCodec::default(), input);
        assert!(err.is_none());
        assert_eq!(frames.len(), 3);
        assert!(
            matches!(&frames[0], Frame::Message { message: WorkerMessage::Log(l), len: 28 } if l.message == "a")
        );
        assert_eq!(frames[1], Frame::Junk("Hello from echo".into()));
        assert!(matches!(
            &frames[2],
            Frame::Message {
                message: WorkerMessage::Response(r),
                ..
            } if r.status == 200
        ));
    }

    #[test]
    fn partial_line_waits_then_completes() {
        let mut codec = NdjsonCodec::default();
        let mut buf = BytesMut::from(&b"{\"type\":\"log\","[..]);
        assert!(codec.decode(&mut buf).expect("decode").is_none());
        buf.extend_from_slice(b"\"message\":\"x\"}\n");
        let frame = codec.decode(&mut buf).expect("decode").expect("frame");
        assert!(matches!(frame, Frame::Message { .. }));
        assert!(buf.is_empty());
    }

    #[test]
    fn trailing_output_without_newline_is_reported_at_eof() {
        let (frames, err) = decode_all(&mut NdjsonCodec::default(), b"stray bytes");
        assert!(err.is_none());
        assert_eq!(frames, vec![Frame::Junk("stray bytes".into())]);
    }

    #[test]
    fn line_over_limit_is_an_error_even_without_newline() {
        let mut codec = NdjsonCodec::new(16);
        let mut buf = BytesMut::from(&[b'x'; 17][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::LineTooLong { limit: 16 })
        ));
        let mut codec = NdjsonCodec::new(16);
        let mut buf = BytesMut::from(&b"01234567890123456789\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::LineTooLong { limit: 16 })
        ));
        // Exactly at the limit is fine.
        let mut codec = NdjsonCodec::new(16);
        let mut buf = BytesMut::from(&b"0123456789012345\n"[..]);
        assert_eq!(
            codec.decode(&mut buf).expect("decode"),
            Some(Frame::Junk("0123456789012345".into()))
        );
    }

    #[test]
    fn invalid_utf8_is_junk_not_panic() {
        let (frames, err) = decode_all(&mut NdjsonCodec::default(), b"\xff\xfe{\n");
        assert!(err.is_none());
        assert!(matches!(&frames[0], Frame::Junk(s) if s.contains('{')));
    }

    #[test]
    fn encodes_one_line_per_message() {
        let mut codec = NdjsonCodec::default();
        let mut dst = BytesMut::new();
        codec.encode(&HostMessage::Stop, &mut dst).expect("encode");
        codec.encode(&HostMessage::Stop, &mut dst).expect("encode");
        assert_eq!(&dst[..], b"{\"type\":\"stop\"}\n{\"type\":\"stop\"}\n");
    }

    /// Arbitrary bytes, fed in arbitrary chunks, never panic and never stall: every byte is
    /// either consumed into a frame or the stream ends with `LineTooLong`.
    #[test]
    fn arbitrary_bytes_never_panic_or_wedge() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..2_000 {
            let len = (next() % 4096) as usize;
            let alphabet: &[u8] = if round % 2 == 0 {
                b"{}\":,\n\r\\ typeresponslogid0123456789[]truefalsnul\xff\xc3"
            } else {
                &[]
            };
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if alphabet.is_empty() {
                        r as u8
                    } else {
                        alphabet[(r as usize) % alphabet.len()]
                    }
                })
                .collect();
            let mut codec = NdjsonCodec::new(512);
            let mut buf = BytesMut::new();
            let mut fed = 0;
            let mut failed = false;
            while fed < input.len() && !failed {
                let chunk = 1 + (next() as usize % 300);
                let end = (fed + chunk).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
                loop {
                    let before = buf.len();
                    match codec.decode(&mut buf) {
                        Ok(Some(_)) => assert!(buf.len() < before, "a frame must consume bytes"),
                        Ok(None) => break,
                        Err(CodecError::LineTooLong { .. }) => {
                            failed = true;
                            break;
                        }
                        Err(other) => panic!("unexpected error {other}"),
                    }
                }
            }
            if !failed {
                while let Ok(Some(_)) = codec.decode_eof(&mut buf) {}
                assert!(buf.is_empty(), "eof must drain the buffer");
            }
        }
    }
}
