//! Zeno's wire protocol, version 1: the messages a host and a PHP worker exchange, and the
//! line codec that frames them.
//!
//! Every message is one JSON object on one `\n`-terminated line. The host writes
//! [`HostMessage`]s to the worker's stdin and reads [`WorkerMessage`]s from its stdout.
//! This crate is pure: it knows nothing about processes or sockets, so it can be tested
//! byte for byte and reused by anyone who speaks the protocol. `docs/protocol.md` is the
//! prose version of what is here.

mod codec;
mod messages;

pub use codec::{CodecError, Frame, NdjsonCodec, DEFAULT_MAX_LINE};
pub use messages::{
    Body, BodyError, ChunkHeader, Done, End, FormField, HeaderMap, HostCall, HostMessage,
    HostResult, HttpRequest, Log, Ready, Request, RequestKind, Response, StreamAck, Upload,
    WorkerMessage,
};

/// An error and its sources on one line (`could not start php-cgi: No such file or
/// directory`), for logs and messages. Zeno's errors keep their cause as a `source` instead of
/// repeating it in their own text, so `anyhow`'s `{:#}` and this print each cause once.
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The protocol version this crate speaks. A worker announces its version in `ready`;
/// the host refuses a worker whose version it does not support.
pub const PROTOCOL_VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_prints_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe closed");
        let err = CodecError::Io(io);
        assert_eq!(err.to_string(), "i/o error");
        assert_eq!(report(&err), "i/o error: pipe closed");
    }
}
