//! A latency proxy for the benchmarks (`benches/peers.sh`), loopback only.
//!
//! `latency-proxy LISTEN_PORT UPSTREAM_PORT DELAY_MS [WINDOW_KIB] [LIFETIME_S]`
//!
//! Forwards 127.0.0.1:LISTEN_PORT to 127.0.0.1:UPSTREAM_PORT and delivers every
//! byte DELAY_MS late in each direction, so a request and its answer cost one
//! round trip of 2 x DELAY_MS, as against a remote S3 endpoint. Each connection
//! carries at most WINDOW_KIB (default 2048) in flight per direction, which caps
//! one connection at WINDOW/DELAY (about 200 MiB/s at 10 ms): a stand-in for a
//! TCP window over a real round trip, where parallel connections pay off. Reads
//! are pipelined, so throughput is not cut by the delay itself. Exits after
//! LIFETIME_S (default 7200) seconds.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

/// Bytes per read; the window is counted in these.
const CHUNK_KIB: usize = 64;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: Option<u64>| -> u64 {
        match args.get(i) {
            Some(v) => v.parse().expect("arguments are numbers"),
            None => default.expect(
                "usage: latency-proxy LISTEN_PORT UPSTREAM_PORT DELAY_MS [WINDOW_KIB] [LIFETIME_S]",
            ),
        }
    };
    let (listen, upstream) = (num(0, None) as u16, num(1, None) as u16);
    let delay = Duration::from_millis(num(2, None));
    let window_kib = num(3, Some(2048)) as usize;
    let lifetime = Duration::from_secs(num(4, Some(7200)));
    let listener = TcpListener::bind(("127.0.0.1", listen)).await?;
    tokio::spawn(async move {
        tokio::time::sleep(lifetime).await;
        std::process::exit(0);
    });
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pump(client_read, server_write, delay, window_kib),
                pump(server_read, client_write, delay, window_kib)
            );
        });
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read, with at
/// most `window_kib` read but not yet written.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration, window_kib: usize) {
    let window = Arc::new(Semaphore::new(window_kib.max(CHUNK_KIB)));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>, OwnedSemaphorePermit)>();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK_KIB * 1024];
        loop {
            let Ok(permit) = window.clone().acquire_many_owned(CHUNK_KIB as u32).await else {
                return;
            };
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec(), permit))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, data, permit)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&data).await.is_err() {
                return;
            }
            drop(permit);
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
