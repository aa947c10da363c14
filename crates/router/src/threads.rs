//! The router's threads, in nginx's shape: one single-threaded runtime per
//! core, each with its own listening socket on the same address
//! (`SO_REUSEPORT`, the kernel spreads connections) and its own pool of
//! backend connections, so that a request never crosses threads and never
//! waits for a lock. Measured in `docs/benchmarks.md`: about twice the
//! throughput of one work-stealing runtime serving the same listener.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;

use tokio::sync::watch;

use crate::serve::{Config, Router};
use crate::table::RouteTable;

/// Connections waiting to be accepted, per socket.
const BACKLOG: i32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a router thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("{0}")]
    Tls(#[source] crate::tls::CertError),
}

/// Routers running on their threads; [`Running::stop`] ends them.
pub struct Running {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn listener(address: SocketAddr) -> std::io::Result<StdListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Listen on `address` (port 0: a free one) with `threads` routers that
/// read `table`. Every socket is bound before this returns, so a port in
/// use is an error here.
pub fn start(
    address: SocketAddr,
    threads: usize,
    table: watch::Receiver<Arc<RouteTable>>,
    config: Config,
) -> Result<Running, StartError> {
    start_with(address, threads, table, config, None)
}

/// [`start`] for TLS connections: certificates by SNI from `table`
/// ([`crate::tls::server_config`]).
pub fn start_tls(
    address: SocketAddr,
    threads: usize,
    table: watch::Receiver<Arc<RouteTable>>,
    config: Config,
) -> Result<Running, StartError> {
    let tls = crate::tls::server_config(table.clone()).map_err(StartError::Tls)?;
    start_with(address, threads, table, config, Some(tls))
}

fn start_with(
    address: SocketAddr,
    threads: usize,
    table: watch::Receiver<Arc<RouteTable>>,
    config: Config,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Running, StartError> {
    let listen_error = |address, source| StartError::Listen { address, source };
    let first = listener(address).map_err(|e| listen_error(address, e))?;
    let address = first.local_addr().map_err(|e| listen_error(address, e))?;
    let mut listeners = vec![first];
    for _ in 1..threads.max(1) {
        listeners.push(listener(address).map_err(|e| listen_error(address, e))?);
    }
    let (stop, stopped) = watch::channel(false);
    let mut running = Running {
        address,
        stop,
        threads: Vec::new(),
    };
    for (index, listener) in listeners.into_iter().enumerate() {
        let table = table.clone();
        let config = config.clone();
        let tls = tls.clone();
        let mut stopped = stopped.clone();
        let thread = std::thread::Builder::new()
            .name(format!("router-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "A router thread could not start its runtime.");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::error!(%error, "A router thread could not use its socket.");
                            return;
                        }
                    };
                    let shutdown = async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    };
                    let router = Router::new(table, config);
                    match tls {
                        None => router.serve(listener, shutdown).await,
                        Some(tls) => router.serve_tls(listener, tls, shutdown).await,
                    }
                });
            })
            .map_err(StartError::Thread)?;
        running.threads.push(thread);
    }
    Ok(running)
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stop accepting, close the connections and wait for the threads
    /// (blocking: from async code, call it in `spawn_blocking`).
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// One router per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
