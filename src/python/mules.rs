//! Mules, the Python side: the message queues, the `uwsgi` module's mule functions, and what a mule process
//! runs (uWSGI's core/mule.c, plugins/python/python_plugin.c `uwsgi_python_mule*` and uwsgi_pymodule.c).
//!
//! The queues are uWSGI's: one `socketpair(AF_UNIX, SOCK_SEQPACKET)` per mule, one per farm and one shared by
//! every mule ("any mule"), created by the master before it forks anything, so workers and mules inherit
//! them. Everybody sends on the first end; mules receive on the second end of their own queue, the shared
//! queue and their farms' queues (workers close every receive end after the fork, a mule those that are not
//! its own). Both ends are non-blocking: a full queue makes `uwsgi.mule_msg` return False (as uWSGI logs
//! "MULE MSG QUEUE IS FULL"), and mules that wait on the same queue race for each message, one wins.
//! `mule-msg-size` sets SO_SNDBUF/SO_RCVBUF of every end; a message must fit in it.
//!
//! The functions (same names, arguments and answers as uWSGI's): `mule_id()`, `mule_msg(msg[, mule|farm])`,
//! `mule_get_msg(signals=True, farms=True, buffer_size=65536, timeout=-1)`, `farm_msg(farm, msg)`,
//! `farm_get_msg()`, `in_farm([farm])`, `mule_file([id])`, `mule_msg_recv_size()`,
//! `install_mule_msg_hook(func)`. liege has no uWSGI signals, so `signals` changes nothing.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use liege_config::mules::{MuleProgram, MuleSpec, Mules};
use liege_config::VassalConfig;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

/// This process's mule id: 0 in the master and the workers, 1..=N in mules (set right after fork).
static MULE_ID: AtomicU32 = AtomicU32::new(0);

/// The queues of this vassal's mules (created once per master image, inherited by fork).
static QUEUES: OnceLock<Queues> = OnceLock::new();

/// One message queue: the end everybody sends on, and the end its mules receive on (-1 once closed here).
struct Queue {
    send: RawFd,
    receive: AtomicI32,
}

struct Farm {
    name: String,
    mules: Vec<u32>,
    queue: Queue,
}

struct Queues {
    /// By mule id - 1.
    mules: Vec<Queue>,
    shared: Queue,
    farms: Vec<Farm>,
    /// `mule = VALUE` as written, by mule id - 1 (`mule_file()`).
    values: Vec<String>,
    recv_size: usize,
}

pub fn set_mule_id(id: u32) {
    MULE_ID.store(id, Relaxed);
}

pub fn mule_id() -> u32 {
    MULE_ID.load(Relaxed)
}

/// Creates every queue (the master, before its first fork; nothing without mules). The descriptors are
/// close-on-exec: a master that re-executes itself creates new ones.
pub fn create_queues(mules: &Mules) -> std::io::Result<()> {
    if mules.mules.is_empty() || QUEUES.get().is_some() {
        return Ok(());
    }
    let queue = || new_queue(mules.msg_size);
    let queues = Queues {
        mules: (0..mules.mules.len()).map(|_| queue()).collect::<std::io::Result<_>>()?,
        shared: queue()?,
        farms: mules
            .farms
            .iter()
            .map(|farm| Ok(Farm { name: farm.name.clone(), mules: farm.mules.clone(), queue: queue()? }))
            .collect::<std::io::Result<_>>()?,
        values: mules.mules.iter().map(|m| m.value.clone()).collect(),
        recv_size: mules.msg_recv_size,
    };
    let _ = QUEUES.set(queues);
    Ok(())
}

fn new_queue(buffer: Option<usize>) -> std::io::Result<Queue> {
    let mut fds = [-1; 2];
    // SAFETY: socketpair writes two descriptors into the array we own.
    let ok = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ok != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if let Some(size) = buffer {
        let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        for fd in fds {
            for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
                // SAFETY: setsockopt on a descriptor we own, with a c_int option value of the right size.
                let ok = unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        option,
                        (&size as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                if ok != 0 {
                    tracing::warn!("mule-msg-size {size}: setsockopt: {}", std::io::Error::last_os_error());
                }
            }
        }
    }
    Ok(Queue { send: fds[0], receive: AtomicI32::new(fds[1]) })
}

fn close_receive(queue: &Queue) {
    let fd = queue.receive.swap(-1, Relaxed);
    if fd >= 0 {
        // SAFETY: the descriptor is ours and, swapped out above, never used again in this process.
        unsafe { libc::close(fd) };
    }
}

/// In a forked worker: only mules receive.
pub fn close_receive_ends_in_worker() {
    let Some(queues) = QUEUES.get() else { return };
    queues.mules.iter().chain([&queues.shared]).chain(queues.farms.iter().map(|f| &f.queue)).for_each(close_receive);
}

/// In a forked mule: keep the receive ends of its own queue, the shared one and its farms'.
fn close_receive_ends_in_mule(id: u32) {
    let Some(queues) = QUEUES.get() else { return };
    for (index, queue) in queues.mules.iter().enumerate() {
        if index + 1 != id as usize {
            close_receive(queue);
        }
    }
    for farm in &queues.farms {
        if !farm.mules.contains(&id) {
            close_receive(&farm.queue);
        }
    }
}

/// Sends one message; false (logged) when the queue is full or the message too large for it.
fn send(fd: RawFd, message: &[u8]) -> bool {
    // SAFETY: send on a descriptor of ours from a live buffer; MSG_NOSIGNAL: no SIGPIPE.
    let sent =
        unsafe { libc::send(fd, message.as_ptr().cast(), message.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if sent == message.len() as isize {
        return true;
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EMSGSIZE) => {
            let mut size: libc::c_int = 0;
            let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt into a c_int we own, with its size.
            unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    (&mut size as *mut libc::c_int).cast(),
                    &mut length,
                )
            };
            let what = if error.raw_os_error() == Some(libc::EMSGSIZE) { "MESSAGE TOO LARGE" } else { "QUEUE IS FULL" };
            crate::logging::write_line(
                format!(
                    "*** MULE MSG {what}: {} bytes, buffer size {size} bytes (you can tune it with --mule-msg-size) ***",
                    message.len()
                )
                .as_bytes(),
            );
        }
        _ => tracing::error!("mule_msg: {error}"),
    }
    false
}

/// Waits for a message on `fds` (in order of preference) for up to `timeout` (`None`: forever); `Ok(None)`
/// on timeout. The GIL is released while waiting; Python signal handlers run on EINTR.
fn receive(py: Python<'_>, fds: &[RawFd], buffer_size: usize, timeout: Option<Duration>) -> PyResult<Option<Vec<u8>>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut buffer = vec![0u8; buffer_size.max(1)];
    loop {
        let wait_ms = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
            }
        };
        let mut polls: Vec<libc::pollfd> =
            fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
        let (ready, error) = py.detach(|| {
            // SAFETY: poll on our own array of pollfd, of the length given.
            let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, wait_ms) };
            (ready, std::io::Error::last_os_error())
        });
        if ready < 0 {
            if error.raw_os_error() == Some(libc::EINTR) {
                py.check_signals()?;
                continue;
            }
            return Err(PyOSError::new_err(format!("mule_get_msg: poll: {error}")));
        }
        if ready == 0 {
            return Ok(None);
        }
        for poll in &polls {
            if poll.revents & libc::POLLIN == 0 {
                continue;
            }
            // SAFETY: recv into our buffer, of its length, non-blocking (another mule may have won the race).
            let n = unsafe { libc::recv(poll.fd, buffer.as_mut_ptr().cast(), buffer.len(), libc::MSG_DONTWAIT) };
            if n >= 0 {
                buffer.truncate(n as usize);
                return Ok(Some(buffer));
            }
        }
        // Every readable queue was emptied by another mule meanwhile: wait again.
    }
}

/// The receive ends this mule listens on: its own queue, the shared one, and (with `farms`) its farms'.
fn receive_fds(queues: &Queues, id: u32, farms: bool) -> Vec<RawFd> {
    let mut fds = vec![
        queues.mules.get(id as usize - 1).map_or(-1, |q| q.receive.load(Relaxed)),
        queues.shared.receive.load(Relaxed),
    ];
    if farms {
        fds.extend(queues.farms.iter().filter(|f| f.mules.contains(&id)).map(|f| f.queue.receive.load(Relaxed)));
    }
    fds.retain(|&fd| fd >= 0);
    fds
}

fn message_bytes<'a>(message: &'a Bound<'_, PyAny>) -> PyResult<std::borrow::Cow<'a, [u8]>> {
    if let Ok(bytes) = message.cast::<PyBytes>() {
        return Ok(std::borrow::Cow::Borrowed(bytes.as_bytes()));
    }
    if let Ok(text) = message.cast::<PyString>() {
        return Ok(std::borrow::Cow::Owned(text.to_str()?.as_bytes().to_vec()));
    }
    Err(pyo3::exceptions::PyTypeError::new_err("a message is bytes or str"))
}

// --- the uwsgi module's mule functions ---

/// Adds the mule functions to the `uwsgi` module.
pub fn add_functions(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(mule_id_py, module)?)?;
    module.add_function(wrap_pyfunction!(mule_msg, module)?)?;
    module.add_function(wrap_pyfunction!(mule_get_msg, module)?)?;
    module.add_function(wrap_pyfunction!(farm_msg, module)?)?;
    module.add_function(wrap_pyfunction!(farm_get_msg, module)?)?;
    module.add_function(wrap_pyfunction!(in_farm, module)?)?;
    module.add_function(wrap_pyfunction!(mule_file, module)?)?;
    module.add_function(wrap_pyfunction!(mule_msg_recv_size, module)?)?;
    module.add_function(wrap_pyfunction!(install_mule_msg_hook, module)?)?;
    Ok(())
}

#[pyfunction(name = "mule_id")]
fn mule_id_py() -> u32 {
    mule_id()
}

/// `mule_msg(msg)`: to any mule; `mule_msg(msg, N)`: to mule N (0: any); `mule_msg(msg, "farm")`: to one mule
/// of the farm. True once queued, False when the queue is full.
#[pyfunction]
#[pyo3(signature = (message, mule = None))]
fn mule_msg(message: &Bound<'_, PyAny>, mule: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    let Some(queues) = QUEUES.get() else { return Err(PyValueError::new_err("no mule configured")) };
    let message = message_bytes(message)?;
    let fd = match mule {
        None => queues.shared.send,
        Some(target) if target.is_instance_of::<PyString>() => {
            let name: String = target.extract()?;
            match queues.farms.iter().find(|f| f.name == name) {
                Some(farm) => farm.queue.send,
                None => return Err(PyValueError::new_err("unknown farm")),
            }
        }
        Some(target) => match target.extract::<i64>() {
            Ok(0) => queues.shared.send,
            Ok(id) if id > 0 && id as usize <= queues.mules.len() => queues.mules[id as usize - 1].send,
            Ok(_) => return Err(PyValueError::new_err("invalid mule number")),
            Err(_) => return Err(PyValueError::new_err("invalid mule")),
        },
    };
    Ok(send(fd, &message))
}

/// In a mule: the next message for it (its own queue first, then any-mule, then its farms'), as bytes; b""
/// when `timeout` (seconds) passed first, as uWSGI.
#[pyfunction]
#[pyo3(signature = (signals = None, farms = None, buffer_size = 65536, timeout = -1))]
fn mule_get_msg(
    py: Python<'_>,
    signals: Option<&Bound<'_, PyAny>>,
    farms: Option<&Bound<'_, PyAny>>,
    buffer_size: usize,
    timeout: i64,
) -> PyResult<Py<PyBytes>> {
    let _ = signals; // (no uWSGI signals in liege)
    let id = mule_id();
    let Some(queues) = QUEUES.get().filter(|_| id > 0) else {
        return Err(PyValueError::new_err("you can receive mule messages only in a mule !!!"));
    };
    let farms = farms.is_none_or(|f| f.is_truthy().unwrap_or(true));
    let timeout = u64::try_from(timeout).ok().map(Duration::from_secs);
    let message = receive(py, &receive_fds(queues, id, farms), buffer_size, timeout)?.unwrap_or_default();
    Ok(PyBytes::new(py, &message).unbind())
}

/// `farm_msg(farm, msg)`: to one mule of the farm (nothing when there is no such farm, as uWSGI).
#[pyfunction]
fn farm_msg(farm: &str, message: &Bound<'_, PyAny>) -> PyResult<()> {
    let message = message_bytes(message)?;
    if let Some(farm) = QUEUES.get().and_then(|q| q.farms.iter().find(|f| f.name == farm)) {
        send(farm.queue.send, &message);
    }
    Ok(())
}

/// In a mule: the next message sent to one of its farms; None when it is in no farm.
#[pyfunction]
fn farm_get_msg(py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
    let id = mule_id();
    let Some(queues) = QUEUES.get().filter(|_| id > 0) else {
        return Err(PyValueError::new_err("you can receive farm messages only in a mule !!!"));
    };
    let fds: Vec<RawFd> = queues
        .farms
        .iter()
        .filter(|f| f.mules.contains(&id))
        .map(|f| f.queue.receive.load(Relaxed))
        .filter(|&fd| fd >= 0)
        .collect();
    if fds.is_empty() {
        return Ok(None);
    }
    Ok(receive(py, &fds, 65536, None)?.map(|m| PyBytes::new(py, &m).unbind()))
}

/// In a mule: True if it belongs to `farm` (to any farm when omitted), else None (uWSGI's answers).
#[pyfunction]
#[pyo3(signature = (farm = None))]
fn in_farm(farm: Option<&str>) -> Option<bool> {
    let id = mule_id();
    let queues = QUEUES.get().filter(|_| id > 0)?;
    queues.farms.iter().any(|f| farm.is_none_or(|name| f.name == name) && f.mules.contains(&id)).then_some(true)
}

/// The `mule = VALUE` of mule `id` (this mule by default); None for a message-only mule.
#[pyfunction]
#[pyo3(signature = (id = None))]
fn mule_file(id: Option<u32>) -> PyResult<Option<String>> {
    let id = id.unwrap_or_else(mule_id);
    let values = QUEUES.get().map_or(&[][..], |q| q.values.as_slice());
    if id as usize > values.len() {
        return Err(PyValueError::new_err("The id you provided doesn't correspond to any mule"));
    }
    Ok(id.checked_sub(1).and_then(|i| values.get(i as usize)).filter(|v| !v.is_empty()).cloned())
}

#[pyfunction]
fn mule_msg_recv_size() -> usize {
    QUEUES.get().map_or(65536, |q| q.recv_size)
}

/// Adds a function called with each message a message-only mule receives (after `uwsgi.mule_msg_hook`).
#[pyfunction]
fn install_mule_msg_hook(py: Python<'_>, function: Py<PyAny>) -> PyResult<()> {
    let module = py.import("uwsgi")?;
    let hooks = match module.getattr("mule_msg_extra_hooks") {
        Ok(hooks) => hooks.cast_into::<PyList>()?,
        Err(_) => {
            let hooks = PyList::empty(py);
            module.setattr("mule_msg_extra_hooks", &hooks)?;
            hooks
        }
    };
    hooks.append(function)
}

// --- the mule process ---

/// What a forked mule runs; returns its exit code. `preloaded`: the master's interpreter (with the app) came
/// with the fork; otherwise (lazy-apps) Python is started here, without the app, as uWSGI's lazy mules.
pub fn run_mule(config: &VassalConfig, spec: &MuleSpec, preloaded: bool, started_on: u64) -> i32 {
    set_mule_id(spec.id);
    close_receive_ends_in_mule(spec.id);
    if !preloaded && crate::python::loader::prepare_interpreter(config, started_on).is_err() {
        return 1;
    }
    tracing::info!("mule {} (pid {}) running {}", spec.id, std::process::id(), describe(&spec.program));
    Python::attach(|py| {
        crate::python::uwsgi_module::run_post_fork_hook(py);
        let result = match &spec.program {
            MuleProgram::Script(path) => py.import("runpy").and_then(|runpy| {
                let kwargs = pyo3::types::PyDict::new(py);
                kwargs.set_item("run_name", "__main__")?;
                runpy.call_method("run_path", (path.display().to_string(),), Some(&kwargs)).map(drop)
            }),
            MuleProgram::Callable { module, function } => py.import("importlib").and_then(|importlib| {
                let mut target = importlib.call_method1("import_module", (module,))?;
                for part in function.split('.') {
                    target = target.getattr(part)?;
                }
                target.call0().map(drop)
            }),
            MuleProgram::Messages => message_loop(py, spec.id),
        };
        match result {
            Ok(()) => 0,
            Err(err) if err.is_instance_of::<pyo3::exceptions::PySystemExit>(py) => {
                err.value(py).getattr("code").ok().and_then(|c| c.extract::<i32>().ok()).unwrap_or(0)
            }
            Err(err) => {
                tracing::error!("mule {}: {} raised:", spec.id, describe(&spec.program));
                err.print(py);
                1
            }
        }
    })
}

fn describe(program: &MuleProgram) -> String {
    match program {
        MuleProgram::Messages => "the message loop".into(),
        MuleProgram::Script(path) => path.display().to_string(),
        MuleProgram::Callable { module, function } => format!("{module}:{function}"),
    }
}

/// A message-only mule (uWSGI's `uwsgi_mule_handler`): each message goes to `uwsgi.mule_msg_hook` and every
/// `install_mule_msg_hook` function; with none, it is logged. Hook errors are printed, never fatal.
fn message_loop(py: Python<'_>, id: u32) -> PyResult<()> {
    let Some(queues) = QUEUES.get() else { return Ok(()) };
    let fds = receive_fds(queues, id, true);
    loop {
        let Some(message) = receive(py, &fds, queues.recv_size, None)? else { continue };
        let uwsgi = py.import("uwsgi")?;
        let mut hooks: Vec<Bound<'_, PyAny>> = Vec::new();
        if let Ok(hook) = uwsgi.getattr("mule_msg_hook") {
            if !hook.is_none() {
                hooks.push(hook);
            }
        }
        if let Ok(extra) =
            uwsgi.getattr("mule_msg_extra_hooks").and_then(|h| h.cast_into::<PyList>().map_err(Into::into))
        {
            hooks.extend(extra.iter());
        }
        if hooks.is_empty() {
            crate::logging::write_line(
                format!("*** mule {id} received a {} bytes message ***", message.len()).as_bytes(),
            );
            continue;
        }
        let message = PyBytes::new(py, &message);
        for hook in hooks {
            if let Err(err) = hook.call1((&message,)) {
                err.print(py);
            }
        }
    }
}
