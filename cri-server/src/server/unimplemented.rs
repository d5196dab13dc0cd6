//! RuntimeService RPCs whose issues have not landed yet: they answer `Unimplemented` with a
//! message saying so, never a fake success.

/// Defines trait methods answering `Unimplemented`.
macro_rules! unimplemented_rpcs {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {
        $(
            // Written out as `#[async_trait]` would expand it: attribute macros do not see
            // inside macro invocations.
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _r: tonic::Request<k8s_cri::v1::$req>,
            ) -> ::core::pin::Pin<Box<dyn ::core::future::Future<
                Output = Result<tonic::Response<k8s_cri::v1::$resp>, tonic::Status>,
            > + ::core::marker::Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move { Err(crate::server::unimplemented::not_yet(stringify!($name))) })
            }
        )*
    };
}

pub(crate) fn not_yet(rpc: &str) -> tonic::Status {
    tonic::Status::unimplemented(format!(
        "berth-cri: RuntimeService/{rpc} is not implemented yet (checkpoint and \
         runtime config updates come with later issues)"
    ))
}
