//! proxy-wasm 0.2.5 entry points (wasm32 only): thin glue from the SDK's
//! callbacks to [`Root`] and [`Stream`] over [`ProxyHost`].

use crate::audit_property::{declare_audit_property, resolve_audit_encoding};
use crate::core_adapter::core_ports;
use crate::host::{Flow, Host, HostError, LogLevel, ProxyHost};
use crate::root::Root;
use crate::stream::Stream;
use fhir_smart_authz_core::reply::unconfigured_reply;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel as ProxyLogLevel};
use std::cell::RefCell;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(ProxyLogLevel::Trace);
    std::panic::set_hook(Box::new(|info| {
        ProxyHost.log(LogLevel::Critical, &format!("fhir-smart-authz panicked: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(WasmRoot::default()) });
}}

fn action(f: Flow) -> Action {
    match f {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

#[derive(Default)]
struct WasmRoot {
    root: Root,
    /// Outcome of declaring the audit property on this root context (`None`:
    /// not declared: no configuration has asked for `"struct"` yet).
    declared: Option<Result<(), HostError>>,
}

impl Context for WasmRoot {
    fn on_http_call_response(&mut self, token_id: u32, _h: usize, body_size: usize, _t: usize) {
        self.root.on_call_response(&ProxyHost, token_id, body_size);
    }
}

impl RootContext for WasmRoot {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        ProxyHost.log(
            LogLevel::Info,
            concat!("fhir-smart-authz ", env!("CARGO_PKG_VERSION"), " starting"),
        );
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = ProxyHost.plugin_configuration();
        let declared = &mut self.declared;
        self.root
            .configure_with(&ProxyHost, bytes.as_deref(), &core_ports, &mut |config| {
                resolve_audit_encoding(&ProxyHost, config, declared, &mut || {
                    declare_audit_property(&ProxyHost)
                })
            })
    }

    fn on_tick(&mut self) {
        self.root.tick(&ProxyHost);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(WasmHttp {
            stream: self
                .root
                .shared
                .clone()
                .map(|shared| Stream::new_shared(shared, context_id)),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct WasmHttp {
    /// `None` when the plugin has no valid configuration: fail closed.
    /// Shared with the root's wait list (`Stream::new_shared`).
    stream: Option<Rc<RefCell<Stream>>>,
}

impl Context for WasmHttp {
    fn on_http_call_response(&mut self, token_id: u32, _h: usize, body_size: usize, _t: usize) {
        if let Some(Ok(mut s)) = self.stream.as_ref().map(|s| s.try_borrow_mut()) {
            s.on_call_response(&ProxyHost, token_id, body_size);
        }
    }
}

impl HttpContext for WasmHttp {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        crate::fault_injection::trap_if_asked(&ProxyHost);
        match self.stream.as_ref().map(|s| s.try_borrow_mut()) {
            Some(Ok(mut s)) => action(s.on_request_headers(&ProxyHost, end_of_stream)),
            _ => {
                let _ = ProxyHost.send_local_reply(&unconfigured_reply());
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.stream.as_ref().map(|s| s.try_borrow_mut()) {
            Some(Ok(mut s)) => action(s.on_request_body(&ProxyHost, body_size, end_of_stream)),
            _ => Action::Pause,
        }
    }

    // Never the SDK's default `Continue`: it would let a request whose body
    // decision is still to come go upstream with its body.
    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        match self.stream.as_ref().map(|s| s.try_borrow_mut()) {
            Some(Ok(mut s)) => action(s.on_request_trailers(&ProxyHost)),
            _ => Action::Pause,
        }
    }

    fn on_http_response_headers(&mut self, _n: usize, _end_of_stream: bool) -> Action {
        match self.stream.as_ref().map(|s| s.try_borrow_mut()) {
            Some(Ok(mut s)) => action(s.on_response_headers(&ProxyHost)),
            _ => Action::Continue,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.stream.as_ref().map(|s| s.try_borrow_mut()) {
            Some(Ok(mut s)) => action(s.on_response_body(&ProxyHost, body_size, end_of_stream)),
            _ => Action::Continue,
        }
    }

    fn on_log(&mut self) {
        if let Some(Ok(mut s)) = self.stream.as_ref().map(|s| s.try_borrow_mut()) {
            s.on_log(&ProxyHost);
        }
    }
}
