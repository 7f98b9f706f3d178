//! Blocking-TCP baselines, measured in the coordinator in the same run as
//! the nodes: two threads on 127.0.0.1 with `std::net`, no encryption, no
//! framing beyond a 4-byte length, no async runtime. What groupmesh's
//! figures are set beside.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

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
