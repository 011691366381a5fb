//! What the worker tests share.

use zeno_protocol::{HostCall, HostResult};
use zeno_worker::{CallOrigin, HostCalls};

/// A host with no functions: every call fails with `unknown_function`.
pub struct NoCalls;

impl HostCalls for NoCalls {
    fn call<'a>(
        &'a self,
        call: HostCall,
        _origin: CallOrigin<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HostResult> + Send + 'a>> {
        Box::pin(async move { HostResult::err(call.id, "unknown_function", "none") })
    }
}
