//! Blocking-TCP baselines, measured in the coordinator in the same run as
//! the nodes: two threads on 127.0.0.1 with `std::net`, no encryption, no
//! framing beyond a 4-byte length, no async runtime. What groupmesh's
//! figures are set beside.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::worker::schedstat_ns;

/// A connected pair of blocking sockets on loopback, with `TCP_NODELAY`
/// (as the driver sets it).
fn pair() -> Result<(TcpStream, TcpStream), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let client = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let (server, _) = listener.accept().map_err(|e| e.to_string())?;
    for s in [&client, &server] {
        s.set_nodelay(true).map_err(|e| e.to_string())?;
    }
    Ok((client, server))
}

/// One thread writes `count` length-prefixed messages of `size` bytes
/// through a `BufWriter`, the other reads them through a `BufReader`.
/// Returns (messages per second, MB per second), from the first write to
/// the last read.
pub(crate) fn flood(count: u64, size: usize) -> Result<(f64, f64), String> {
    let (client, server) = pair()?;
    let start = Instant::now();
    let writer = thread::spawn(move || -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(64 * 1024, client);
        let mut msg = vec![0xA5u8; size];
        let len = u32::try_from(size).unwrap_or(u32::MAX).to_le_bytes();
        for seq in 0..count {
            msg[..8.min(size)].copy_from_slice(&seq.to_le_bytes()[..8.min(size)]);
            w.write_all(&len)?;
            w.write_all(&msg)?;
        }
        w.flush()
    });
    let mut r = BufReader::with_capacity(64 * 1024, server);
    let mut len = [0u8; 4];
    let mut msg = vec![0u8; size];
    for _ in 0..count {
        r.read_exact(&mut len).map_err(|e| e.to_string())?;
        r.read_exact(&mut msg).map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| "the baseline writer panicked".to_owned())?
        .map_err(|e| e.to_string())?;
    #[allow(clippy::cast_precision_loss)]
    let (n, bytes) = (count as f64, (count * size as u64) as f64);
    Ok((n / secs, bytes / secs / 1e6))
}

/// Round trips of `size` bytes: one thread writes a message and waits for
/// it back, the other echoes it; `warmup` unmeasured first. The samples (µs).
pub(crate) fn ping_pong(iters: usize, warmup: usize, size: usize) -> Result<Vec<f64>, String> {
    let (mut client, mut server) = pair()?;
    let rounds = iters + warmup;
    let echo = thread::spawn(move || -> std::io::Result<()> {
        let mut msg = vec![0u8; size];
        for _ in 0..rounds {
            server.read_exact(&mut msg)?;
            server.write_all(&msg)?;
        }
        Ok(())
    });
    let mut msg = vec![0xA5u8; size];
    let mut samples = Vec::with_capacity(iters);
    for k in 0..rounds {
        let start = Instant::now();
        client.write_all(&msg).map_err(|e| e.to_string())?;
        client.read_exact(&mut msg).map_err(|e| e.to_string())?;
        if k >= warmup {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    echo.join()
        .map_err(|_| "the baseline echo panicked".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(samples)
}

/// What [`fan_out`] measured.
pub(crate) struct FanOut {
    /// The one-way samples (µs, from just before the first write) of each
    /// receiver, in the order the sender writes to them.
    pub(crate) arrivals: Vec<Vec<f64>>,
    /// A receiving thread's CPU time per message read (µs, mean over the
    /// receivers; schedstat, as the nodes' CPU is measured).
    pub(crate) reader_cpu_us: f64,
}

/// This thread's time on CPU (ns), from `/proc/thread-self/schedstat`.
fn thread_cpu_ns() -> u64 {
    schedstat_ns(Path::new("/proc/thread-self/schedstat")).unwrap_or(0)
}

/// One-way latency of a fan-out over blocking TCP, the floor under a group
/// change reaching the mesh: a sender thread writes `size` bytes to each of
/// `receivers` sockets in turn (as a node writes one change to each of its
/// connections), and each receiver thread, blocked in `read`, notes when
/// its copy arrived. Between rounds the sender sleeps `gap`, so every round
/// starts from sleeping threads, as the nodes' rounds do.
pub(crate) fn fan_out(
    receivers: usize,
    iters: usize,
    warmup: usize,
    size: usize,
    gap: Duration,
) -> Result<FanOut, String> {
    let rounds = iters + warmup;
    let start = Instant::now();
    let mut writers = Vec::with_capacity(receivers);
    let mut readers = Vec::with_capacity(receivers);
    for _ in 0..receivers {
        let (client, mut server) = pair()?;
        writers.push(client);
        readers.push(thread::spawn(
            move || -> std::io::Result<(Vec<f64>, u64)> {
                let mut msg = vec![0u8; size];
                let mut arrived = Vec::with_capacity(rounds);
                let cpu = thread_cpu_ns();
                for _ in 0..rounds {
                    server.read_exact(&mut msg)?;
                    arrived.push(start.elapsed().as_secs_f64() * 1e6);
                }
                Ok((arrived, thread_cpu_ns().saturating_sub(cpu)))
            },
        ));
    }
    let msg = vec![0xA5u8; size];
    let mut sent = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        thread::sleep(gap);
        sent.push(start.elapsed().as_secs_f64() * 1e6);
        for w in &mut writers {
            w.write_all(&msg).map_err(|e| e.to_string())?;
        }
    }
    let mut arrivals = Vec::with_capacity(receivers);
    let mut cpu_ns = 0;
    for r in readers {
        let (arrived, cpu) = r
            .join()
            .map_err(|_| "a fan-out reader panicked".to_owned())?
            .map_err(|e| e.to_string())?;
        cpu_ns += cpu;
        arrivals.push(
            arrived
                .iter()
                .zip(&sent)
                .skip(warmup)
                .map(|(a, s)| a - s)
                .collect(),
        );
    }
    #[allow(clippy::cast_precision_loss)]
    let reader_cpu_us = cpu_ns as f64 / 1e3 / (receivers.max(1) * rounds.max(1)) as f64;
    Ok(FanOut {
        arrivals,
        reader_cpu_us,
    })
}
