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
    Body, BodyError, Done, FormField, HeaderMap, HostCall, HostMessage, HostResult, HttpRequest,
    Log, Ready, Request, RequestKind, Response, Upload, WorkerMessage,
};

/// The protocol version this crate speaks. A worker announces its version in `ready`;
/// the host refuses a worker whose version it does not support.
pub const PROTOCOL_VERSION: u32 = 1;
