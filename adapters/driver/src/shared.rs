//! [`Shared`]: the core behind a mutex, and the drain that carries out what it
//! asks (write bytes, dial, close, tell monitors, wake the timer).
//!
//! Every input (bytes read, a connection accepted, dialled or lost, a timer,
//! a local API call) locks the core, reads the clock and feeds the core. Its
//! outputs are drained in the manner of TCP's autocorking: the first input
//! after a quiet moment is drained at once, straight to the sockets from the
//! calling thread (a lone change or message waits for no task hop), and
//! corks the node until the next turn of the executor; inputs meanwhile are
//! drained together by one flush task, so the core batches them (one write
//! per connection, one membership frame per peer). That keeps a loop of a
//! thousand `register` calls from sending a thousand frames to every peer.
//! Nothing here blocks or awaits with the lock held: bytes the socket does
//! not take at once go to per-connection writer tasks through channels,
//! dials are spawned, events land in bounded mailboxes.
//!
//! This is the layer under the tasks and the handles: it names neither. The
//! connection tasks (`conn`) and the timer task call in with their inputs,
//! the handles through [`Control`]; a connection's task is handed to it (by
//! the accept loop to [`Shared::inbound`], and the [`DialTask`] by
//! `Node::start_on`). Below it are only the mailboxes it fills and leaves.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use event_listener::Event as Notify;
use futures_lite::future;
use groupmesh_core::{ConnId, Instant, Node as Core, NodeId, PortId};
use tracing::Instrument;

mod control;
mod messaging;
mod output;

use output::{Writes, WRITES_PER_CALL};

pub(crate) use control::Control;
pub(crate) use messaging::{send_now, send_waiting, Attempt, Try};

use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::mailbox::Mailboxes;
use crate::runtime::Runtime;
use crate::stop::{tripwire, Trigger, Tripwire};

/// The most a connection's writer may hold and still count as drained.
const LOW_WATER: usize = 64 * 1024;

/// The low-water mark for a send buffer of `send_buffer` bytes: with a
/// snapshot chunk of at most a quarter of it too (`Node::start_on`), a
/// snapshot never fills more than about half of it.
fn low_water(send_buffer: usize) -> usize {
    LOW_WATER.min(send_buffer / 4)
}

/// What a connection's task gets from the node: the other ends of its slot.
pub(crate) struct Wire {
    /// Bytes to write; closed once the connection is closing on our side.
    pub(crate) out: Receiver<Vec<u8>>,
    /// Bytes handed to the writer and not yet written.
    pub(crate) queued: Arc<AtomicUsize>,
}

/// The task of a connection the core asked to dial (`conn::dial_task`). The node
/// is handed it when it starts (`Node::start_on`) rather than naming the
/// connection tasks, which call into it.
pub(crate) type DialTask<R> =
    fn(Arc<Shared<R>>, ConnId, SocketAddr, Wire) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// The driver side of one connection (`S`: the runtime's stream).
#[derive(Debug)]
struct Slot<S> {
    /// Bytes for the writer; `None` once the connection is closing (the
    /// writer then writes what it has and closes the socket).
    out: Option<Sender<Vec<u8>>>,
    /// Bytes handed to the writer and not yet written.
    queued: Arc<AtomicUsize>,
    /// The socket, once connected (`None` while dialling: closing the slot
    /// then aborts the dial): written directly while the writer is idle.
    direct: Option<S>,
    /// Notified when the writer drained (or the connection closed):
    /// senders waiting for room try again.
    writable: Notify,
    /// Dropping it ends the connection's task at once, dropping the socket.
    _abort: Trigger,
}

/// Everything behind the lock.
pub(crate) struct State<S> {
    pub(crate) core: Core,
    slots: HashMap<ConnId, Slot<S>>,
    /// The deadline the timer task sleeps until.
    armed: Option<Instant>,
    /// Where monitors' changes, events, messages and port monitors' notices
    /// wait for the handles.
    mailboxes: Mailboxes,
    /// Messages the driver dropped: for a port whose mailbox is gone.
    dropped: u64,
    /// Senders waiting for the core's `SendReady`, by destination port.
    send_ready: HashMap<PortId, Notify>,
    /// Shut down or killed: the local API refuses, streams end.
    stopped: bool,
    /// Corked: a flush task is on its way, and inputs until then are drained by it.
    flush_pending: bool,
    /// Why dials failed, until their connection's close is reported.
    dial_errors: HashMap<ConnId, io::ErrorKind>,
    /// The incarnation of every node up (reported by `NodeUp`, not yet down).
    up: BTreeMap<NodeId, u64>,
    /// The most bytes one connection's writer held at a time.
    send_buffer_peak: usize,
}

/// One node's driver state, shared by its tasks and handles.
pub(crate) struct Shared<R: Runtime> {
    /// Itself, for the tasks it spawns.
    me: Weak<Shared<R>>,
    pub(crate) rt: R,
    /// The node's tracing span: every log line of its tasks carries its id.
    pub(crate) span: tracing::Span,
    pub(crate) clock: Clock,
    send_buffer: usize,
    /// A connection's writer holding this much or less has drained: the
    /// core hears it (`handle_drained`), and its next snapshot chunk follows.
    pub(crate) low_water: usize,
    pub(crate) linger: Duration,
    state: Mutex<State<R::Stream>>,
    /// Starts the task of a connection being dialled.
    dial_task: DialTask<R>,
    /// Wakes the timer task when its deadline moved closer.
    pub(crate) wake_timer: Notify,
    /// Notified when the last connection task ended.
    idle: Notify,
    /// Stops the listeners and the timer (graceful shutdown).
    halt: Trigger,
    halted: Tripwire,
    /// Stops every task (kill, or the end of a shutdown).
    kill: Trigger,
    killed: Tripwire,
}

impl<R: Runtime> Shared<R> {
    pub(crate) fn new(
        rt: R,
        clock: Clock,
        core: Core,
        cfg: &NodeConfig,
        dial: DialTask<R>,
    ) -> Arc<Self> {
        let span = tracing::info_span!("node", id = %core.id());
        let (halt, halted) = tripwire();
        let (kill, killed) = tripwire();
        Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            rt,
            span,
            clock,
            send_buffer: cfg.send_buffer,
            low_water: low_water(cfg.send_buffer),
            linger: cfg.linger,
            state: Mutex::new(State {
                core,
                slots: HashMap::new(),
                armed: None,
                mailboxes: Mailboxes::new(cfg.event_buffer),
                dropped: 0,
                send_ready: HashMap::new(),
                stopped: false,
                flush_pending: false,
                dial_errors: HashMap::new(),
                up: BTreeMap::new(),
                send_buffer_peak: 0,
            }),
            dial_task: dial,
            wake_timer: Notify::new(),
            idle: Notify::new(),
            halt,
            halted,
            kill,
            killed,
        })
    }

    /// Locks the state. A panic while it was held is a bug that was already
    /// reported; carry on with the state as it is rather than panic again.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<R::Stream>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds one input to the core (`f` gets the time, read under the lock),
    /// then drains as the module's documentation says.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State<R::Stream>, Instant) -> T) -> T {
        self.input(f, false)
    }

    /// Feeds one input and drains every output before returning.
    fn with_now<T>(&self, f: impl FnOnce(&mut State<R::Stream>, Instant) -> T) -> T {
        self.input(f, true)
    }

    fn input<T>(&self, f: impl FnOnce(&mut State<R::Stream>, Instant) -> T, now: bool) -> T {
        let _entered = self.span.enter();
        let mut st = self.lock();
        let out = f(&mut st, self.clock.now());
        if now {
            self.drain(&mut st, Writes::All);
        } else {
            self.after_input(&mut st);
        }
        out
    }

    /// After an input fed the core under `st`. The first input after a
    /// quiet moment is drained at once and, if that wrote to a connection,
    /// corks the node: inputs until the flush task it schedules has run (the
    /// next turn of the executor) are batched and drained by that task,
    /// which uncorks. An input that writes nothing (a peer's change, shown
    /// to monitors) leaves the node uncorked and costs no task.
    fn after_input(&self, st: &mut State<R::Stream>) {
        if !st.flush_pending && self.drain(st, Writes::AtMost(WRITES_PER_CALL)) {
            self.schedule_flush(st);
        }
    }

    /// Drains now if a flush is pending, so that a reader never looks at a
    /// mailbox (or counter) while outputs of earlier calls are still held.
    fn settle(&self, st: &mut State<R::Stream>) {
        if st.flush_pending {
            self.drain(st, Writes::All);
        }
    }

    /// Corks the node: a flush task will drain the core soon.
    fn schedule_flush(&self, st: &mut State<R::Stream>) {
        let Some(me) = self.me.upgrade() else {
            return; // the node is being dropped: nothing runs later
        };
        st.flush_pending = true;
        self.spawn_killable(async move {
            let mut st = me.lock();
            st.flush_pending = false;
            me.drain(&mut st, Writes::All);
        });
    }

    // ----- tasks -------------------------------------------------------

    /// Completes `d` from now, on the runtime's timer.
    pub(crate) fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send + '_ {
        self.rt.sleep_until(std::time::Instant::now() + d)
    }

    /// Spawns `task`, ending it early when the node is killed.
    fn spawn_killable(&self, task: impl Future<Output = ()> + Send + 'static) {
        let killed = self.killed.clone();
        let task = future::or(task, killed.wait()).instrument(self.span.clone());
        self.rt.spawn(task);
    }

    /// Spawns `task`, ending it early when the node halts (shuts down or is killed).
    pub(crate) fn spawn_haltable(&self, task: impl Future<Output = ()> + Send + 'static) {
        let halted = self.halted.clone();
        self.spawn_killable(future::or(task, halted.wait()));
    }

    /// Registers a connection and spawns its task, ended early by `abort`
    /// (the slot dropped) or a kill.
    fn open_slot<F>(
        &self,
        st: &mut State<R::Stream>,
        id: ConnId,
        direct: Option<R::Stream>,
        task: impl FnOnce(Arc<Self>, Wire) -> F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(me) = self.me.upgrade() else {
            return; // the node is being dropped: nothing to connect for
        };
        let (tx, rx) = async_channel::unbounded();
        let (abort, aborted) = tripwire();
        let queued = Arc::new(AtomicUsize::new(0));
        st.slots.insert(
            id,
            Slot {
                out: Some(tx),
                queued: queued.clone(),
                direct,
                writable: Notify::new(),
                _abort: abort,
            },
        );
        let wire = Wire { out: rx, queued };
        let task = task(me, wire);
        self.spawn_killable(future::or(task, aborted.wait()));
    }

    /// Starts the task of a connection the core asked to dial.
    fn dial(&self, st: &mut State<R::Stream>, id: ConnId, addr: SocketAddr) {
        let task = self.dial_task;
        self.open_slot(st, id, None, move |shared, wire| {
            task(shared, id, addr, wire)
        });
    }

    /// Closes a connection's socket: a dial is aborted; an open connection
    /// writes what it was given, then closes.
    fn close_slot(&self, st: &mut State<R::Stream>, id: ConnId) {
        match st.slots.get_mut(&id) {
            Some(slot) if slot.direct.is_none() => self.remove_slot(st, id),
            Some(slot) => slot.out = None,
            None => {}
        }
    }

    /// Forgets a connection; its task, if still running, ends at once.
    fn remove_slot(&self, st: &mut State<R::Stream>, id: ConnId) {
        let Some(slot) = st.slots.remove(&id) else {
            return;
        };
        // Its waiting senders try again: the core then finds no connection.
        slot.writable.notify(usize::MAX);
        if st.slots.is_empty() {
            self.idle.notify(usize::MAX);
        }
    }

    /// The writer of `id` drained: senders waiting for room try again.
    fn writable(st: &State<R::Stream>, id: ConnId) {
        if let Some(slot) = st.slots.get(&id) {
            slot.writable.notify(usize::MAX);
        }
    }

    // ----- inputs from the network and the clock -----------------------

    /// A listener accepted `stream` from `addr`: unless the core refuses
    /// it, its connection's task is `task`.
    pub(crate) fn inbound<F>(
        &self,
        stream: R::Stream,
        addr: SocketAddr,
        task: impl FnOnce(Arc<Self>, ConnId, R::Stream, Wire) -> F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        self.with(|st, now| {
            if st.stopped {
                return;
            }
            match st.core.handle_inbound(now, addr) {
                Some(id) => {
                    tracing::debug!(conn = %id, %addr, "tcp connection accepted");
                    let direct = Some(stream.clone());
                    self.open_slot(st, id, direct, move |shared, wire| {
                        task(shared, id, stream, wire)
                    });
                }
                None => tracing::debug!(%addr, "tcp connection refused: connection limit"),
            }
        });
    }

    /// The dial of `id` connected. False if the connection was given up meanwhile.
    pub(crate) fn dialed(&self, id: ConnId, stream: &R::Stream) -> bool {
        self.with(|st, now| match st.slots.get_mut(&id) {
            Some(slot) if slot.direct.is_none() => {
                slot.direct = Some(stream.clone());
                st.core.handle_dialed(now, id);
                true
            }
            _ => false,
        })
    }

    /// The dial of `id` failed with an error of `kind`.
    pub(crate) fn dial_failed(&self, id: ConnId, kind: io::ErrorKind) {
        self.with(|st, now| {
            self.remove_slot(st, id);
            st.dial_errors.insert(id, kind);
            st.core.handle_dial_failed(now, id);
        });
    }

    /// Bytes arrived on `id`.
    pub(crate) fn bytes(&self, id: ConnId, bytes: &[u8]) {
        self.with(|st, now| st.core.handle_bytes(now, id, bytes));
    }

    /// The writer of `id` got down to the low-water mark.
    pub(crate) fn drained(&self, id: ConnId) {
        self.with(|st, now| {
            Self::writable(st, id);
            st.core.handle_drained(now, id);
        });
    }

    /// The socket of `id` was closed or reset, or failed.
    pub(crate) fn closed(&self, id: ConnId) {
        self.with(|st, now| st.core.handle_closed(now, id));
    }

    /// The task of `id` ended.
    pub(crate) fn task_ended(&self, id: ConnId) {
        let mut st = self.lock();
        self.remove_slot(&mut st, id);
    }

    /// Fires the core's timers if due; returns the deadline to sleep until.
    pub(crate) fn tick(&self) -> Option<Instant> {
        let mut st = self.lock();
        let now = self.clock.now();
        if st.core.poll_timeout().is_some_and(|at| at <= now) {
            st.core.handle_timeout(now);
            self.drain(&mut st, Writes::All);
        }
        // Whatever is still due now was just handled: never spin on it.
        let next = st
            .core
            .poll_timeout()
            .map(|at| at.max(now + Duration::from_millis(1)));
        st.armed = next;
        next
    }

    // ----- the node's life -----------------------------------------------

    pub(crate) fn subscribe(&self) -> u64 {
        self.lock().mailboxes.subscribe()
    }

    /// Stops the local API and ends every stream (their readers are woken).
    fn stop(&self, st: &mut State<R::Stream>) {
        st.stopped = true;
        st.mailboxes.wake_all();
        // Waiting senders try again and find the node stopped.
        for (_, ready) in st.send_ready.drain() {
            ready.notify(usize::MAX);
        }
        for slot in st.slots.values() {
            slot.writable.notify(usize::MAX);
        }
    }

    /// Starts a graceful shutdown: peers are told, connections write their
    /// last bytes and close, listeners and the timer stop. False if the node
    /// was already stopped.
    pub(crate) fn begin_shutdown(&self) -> bool {
        let started = self.with_now(|st, now| {
            if st.stopped {
                return false;
            }
            self.stop(st);
            st.core.shutdown(now);
            true
        });
        if started {
            self.halt.fire();
        }
        started
    }

    /// Waits until every connection closed, for at most `linger`, then kills
    /// whatever is left.
    pub(crate) async fn finish_shutdown(&self) {
        let idle = async {
            loop {
                let changed = self.idle.listen();
                if self.lock().slots.is_empty() {
                    return;
                }
                changed.await;
            }
        };
        future::or(idle, self.sleep(self.linger)).await;
        self.kill.fire();
    }

    /// Stops everything at once, without telling peers (as a crash would).
    pub(crate) fn kill(&self) {
        let mut st = self.lock();
        self.stop(&mut st);
        self.halt.fire();
        self.kill.fire();
    }
}
