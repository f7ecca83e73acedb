//! The data of one request's `Store`: a fresh WASI context, a resource table,
//! and cheap handles on the registry-wide configuration of each import.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::keyvalue::{WasiKeyValue, WasiKeyValueCtx};
use crate::outbound::OutboundHttp;
use crate::request_counts::RequestCounts;
use crate::runtime::InstanceMemory;
use crate::variables::{Variables, VariablesCtx};

/// Registry-wide configuration of the imports; cloned into every request.
#[derive(Clone)]
pub struct Imports {
    pub keyvalue: WasiKeyValueCtx,
    pub variables: VariablesCtx,
    pub outbound: OutboundHttp,
}

/// Per-request store data.
pub struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    imports: Imports,
    limits: InstanceMemory,
    /// What the request asked of the store and of S3 (the outbound hooks
    /// count into it too).
    counts: Arc<RequestCounts>,
}

impl State {
    /// A fresh context: no arguments, environment or files (as Spin gives by
    /// default); the guest's stdout/stderr go to ours. Each linear memory may
    /// grow as far as `memory` allows; a growth beyond fails (the guest's
    /// allocator then aborts the request). The request's store calls and
    /// outbound requests are counted into `counts`.
    pub fn new(mut imports: Imports, memory: InstanceMemory, counts: Arc<RequestCounts>) -> Self {
        imports.outbound = imports.outbound.counting_into(counts.clone());
        State {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            imports,
            limits: memory,
            counts,
        }
    }

    /// For `Store::limiter`.
    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    pub fn keyvalue(&mut self) -> WasiKeyValue<'_> {
        WasiKeyValue {
            ctx: &self.imports.keyvalue,
            table: &mut self.table,
            counts: &self.counts,
        }
    }

    pub fn variables(&mut self) -> Variables<'_> {
        Variables {
            ctx: &self.imports.variables,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.imports.outbound,
        }
    }
}
