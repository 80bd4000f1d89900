//! Where the app runs: inline on the worker's event loop (`threads = 1`, the default: no hand-off, the
//! cheapest path for a CPU-bound app), or on a small pool of Python threads fed from the event loop
//! (`threads = N`, for apps that wait on I/O: the loop keeps reading and writing other connections while up to
//! N requests are in Python).
//!
//! Pool threads attach to the interpreter once, for their whole life: re-attaching per request would create
//! and destroy a thread state every time. Keep N small; a few hundred threads fighting for one GIL only add
//! switching.

use std::cell::RefCell;
use std::sync::Arc;

use pyo3::prelude::*;

use crate::python::environ::{ConnectionInfo, ConnectionStrings, EnvironBuilder, EnvironSettings};
use crate::python::iteration::IterationPool;
use crate::python::streams::RequestBody;
use pyo3::types::PyDict;

/// What Python-side request code needs; one per thread that runs the app.
pub struct PyContext {
    pub app: Py<PyAny>,
    pub environ: EnvironBuilder,
    pub streams: Arc<IterationPool>,
    /// The strings of the last connection served on this thread (keep-alive requests reuse them).
    connection: Option<(u64, ConnectionStrings)>,
}

impl PyContext {
    pub fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        settings: &EnvironSettings,
        streams: Arc<IterationPool>,
    ) -> PyResult<Self> {
        Ok(Self { app, environ: EnvironBuilder::new(py, settings)?, streams, connection: None })
    }

    /// The environ of an HTTP request; the connection's strings are created once per connection and thread.
    pub fn http_environ<'py>(
        &mut self,
        py: Python<'py>,
        head: &http::request::Parts,
        info: &ConnectionInfo,
        body: RequestBody,
    ) -> PyResult<Bound<'py, PyDict>> {
        let strings = match &mut self.connection {
            Some((id, strings)) if *id == info.id => strings,
            slot => &mut slot.insert((info.id, ConnectionStrings::new(py, info))).1,
        };
        self.environ.http(py, head, strings, body)
    }
}

type Job = Box<dyn FnOnce(Python<'_>, &mut PyContext) + Send>;

// One runner per worker process, so the size difference costs nothing; boxing the inline context would add a
// pointer chase to every request of the fast path.
#[allow(clippy::large_enum_variant)]
pub enum PythonRunner {
    Inline(RefCell<PyContext>),
    Threads(crossbeam_channel::Sender<Job>),
}

impl PythonRunner {
    /// `threads` Python threads, each with its own context, or the inline runner for 1.
    pub fn new(py: Python<'_>, threads: u32, app: Py<PyAny>, settings: &EnvironSettings) -> PyResult<Self> {
        let streams = Arc::new(IterationPool::new());
        if threads <= 1 {
            return Ok(Self::Inline(RefCell::new(PyContext::new(py, app, settings, streams)?)));
        }
        let (sender, receiver) = crossbeam_channel::unbounded::<Job>();
        for number in 1..=threads {
            let mut context = PyContext::new(py, app.clone_ref(py), settings, Arc::clone(&streams))?;
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("liege-app-{number}"))
                .spawn(move || {
                    Python::attach(|py| {
                        py.detach(|| {
                            while let Ok(job) = receiver.recv() {
                                Python::attach(|py| job(py, &mut context));
                            }
                        })
                    })
                })
                .map_err(|err| pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start app thread: {err}")))?;
        }
        Ok(Self::Threads(sender))
    }

    /// Runs `job` with the GIL and a Python context; on the pool the event loop serves other connections
    /// meanwhile.
    pub async fn run<R, F>(&self, job: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(Python<'_>, &mut PyContext) -> R + Send + 'static,
    {
        match self {
            Self::Inline(context) => Some(Python::attach(|py| job(py, &mut context.borrow_mut()))),
            Self::Threads(sender) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let job: Job = Box::new(move |py, context| {
                    let _ = reply.send(job(py, context));
                });
                sender.send(job).ok()?;
                answer.await.ok()
            }
        }
    }
}
