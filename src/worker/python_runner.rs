//! Where the app runs: inline on the worker's event loop (`threads = 1`, the default: no hand-off, the
//! cheapest path for a CPU-bound app), or on a small pool of Python threads fed from the event loop
//! (`threads = N`, for apps that wait on I/O: the loop keeps reading and writing other connections while up to
//! N requests are in Python).
//!
//! Pool threads attach to the interpreter once, for their whole life: re-attaching per request would create
//! and destroy a thread state every time. Keep N small; a few hundred threads fighting for one GIL only add
//! switching.
//!
//! A streamed (generator) response is iterated by the thread that called the app (`python::iteration`):
//! inline, by the event loop's response writer, each request taking its turn ([`PythonRunner::turn`]); on
//! the pool, by the app thread itself after it handed the head to the event loop ([`Handoff`]).

use std::cell::RefCell;

use pyo3::prelude::*;

use crate::python::environ::{ConnectionInfo, ConnectionStrings, EnvironBuilder, EnvironSettings};
use crate::python::iteration::{drive, InlineGate};
use crate::python::response::{BodySource, Prepared};
use crate::python::streams::RequestBody;
use pyo3::types::PyDict;

/// What Python-side request code needs; one per thread that runs the app.
pub struct PyContext {
    pub app: Py<PyAny>,
    pub environ: EnvironBuilder,
    /// The strings of the last connection served on this thread (keep-alive requests reuse them).
    connection: Option<(u64, ConnectionStrings)>,
}

impl PyContext {
    pub fn new(py: Python<'_>, app: Py<PyAny>, settings: &EnvironSettings) -> PyResult<Self> {
        Ok(Self { app, environ: EnvironBuilder::new(py, settings)?, connection: None })
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
    Inline(RefCell<PyContext>, InlineGate),
    Threads(crossbeam_channel::Sender<Job>),
}

/// The inline worker's turn to run app code (`None` on the pool, where each thread is its own turn): taken
/// before the request is marked busy, given to [`PythonRunner::run`].
pub struct Turn(Option<tokio::sync::OwnedSemaphorePermit>);

/// A job's result that may carry a response whose iteration continues on the thread that called the app.
pub trait Handoff: Send + 'static {
    fn response(&mut self) -> Option<&mut Prepared>;
}

impl Handoff for (Prepared, usize, String) {
    fn response(&mut self) -> Option<&mut Prepared> {
        Some(&mut self.0)
    }
}

impl Handoff for (Prepared, String) {
    fn response(&mut self) -> Option<&mut Prepared> {
        Some(&mut self.0)
    }
}

impl PythonRunner {
    /// `threads` Python threads, each with its own context, or the inline runner for 1.
    pub fn new(py: Python<'_>, threads: u32, app: Py<PyAny>, settings: &EnvironSettings) -> PyResult<Self> {
        if threads <= 1 {
            return Ok(Self::Inline(RefCell::new(PyContext::new(py, app, settings)?), InlineGate::new()));
        }
        let (sender, receiver) = crossbeam_channel::unbounded::<Job>();
        for number in 1..=threads {
            let mut context = PyContext::new(py, app.clone_ref(py), settings)?;
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

    /// Waits for the inline worker's turn: the previous request's response iteration must be over (see
    /// `python::iteration`). Immediate on the pool and whenever no stream is in progress.
    pub async fn turn(&self) -> Turn {
        match self {
            Self::Inline(_, gate) => Turn(gate.turn().await),
            Self::Threads(_) => Turn(None),
        }
    }

    /// Runs `job` with the GIL and a Python context; on the pool the event loop serves other connections
    /// meanwhile. A streamed response in the result keeps iterating on the thread that called the app: inline,
    /// its body holds `turn` until the iteration ends; on the pool, the app thread drives it after handing
    /// the result over.
    pub async fn run<R, F>(&self, turn: Turn, job: F) -> Option<R>
    where
        R: Handoff,
        F: FnOnce(Python<'_>, &mut PyContext) -> R + Send + 'static,
    {
        match self {
            Self::Inline(context, _) => {
                let mut result = Python::attach(|py| job(py, &mut context.borrow_mut()));
                if let (Some(Prepared { body: BodySource::Iter { iter, .. }, .. }), Some(permit)) =
                    (result.response(), turn.0)
                {
                    iter.hold(permit);
                }
                Some(result)
            }
            Self::Threads(sender) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let job: Job = Box::new(move |py, context| {
                    let mut result = job(py, context);
                    let tail = result.response().and_then(|prepared| prepared.body.detach_iteration());
                    let delivered = reply.send(result).is_ok();
                    match tail {
                        Some((iter, shared)) if delivered => drive(py, iter, &shared),
                        // The connection is gone: nobody reads the stream, but PEP 3333 still wants `close()`.
                        Some((mut iter, _)) => iter.close(py),
                        None => {}
                    }
                });
                sender.send(job).ok()?;
                answer.await.ok()
            }
        }
    }
}
