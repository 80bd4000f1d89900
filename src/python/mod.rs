//! The Python bridge: the embedded interpreter, the app, and the WSGI protocol (PEP 3333).
//!
//! Everything that touches Python objects lives here; the worker's protocol code hands in request parts and
//! gets back a [`response::Prepared`], never seeing a `PyObject`.

pub mod app;
pub mod environ;
pub mod interpreter;
pub mod introspect;
pub mod iteration;
pub mod loader;
pub mod mules;
pub mod response;
pub mod start_response;
pub mod streams;
pub mod uwsgi_module;
