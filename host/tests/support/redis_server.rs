//! A throwaway `redis-server` for tests: started on a free 127.0.0.1 port,
//! nothing saved to disk, killed when dropped. Where `redis-server` is not
//! installed, [`RedisServer::start_or_skip`] prints why the test is skipped
//! (`.ci/run` installs it, so CI always runs these tests).
//!
//! Shared by the unit tests in `src/keyvalue/redis.rs` and the integration
//! tests (`#[path]`-included), so it depends on the standard library only.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer `PING` before the start is
/// called failed; only there so a broken start fails instead of hanging.
const READY_AT_MOST: Duration = Duration::from_secs(30);

/// Starts tried before giving up (a free port may be taken between picking
/// it and the server binding it).
const START_ATTEMPTS: usize = 3;

/// A running `redis-server`, stopped on drop.
pub struct RedisServer {
    child: Child,
    address: SocketAddr,
}

impl RedisServer {
    /// A started server, or `None` (with a printed reason) when
    /// `redis-server` is not installed. Panics when it is installed but
    /// does not start.
    pub fn start_or_skip(test: &str) -> Option<RedisServer> {
        if !installed() {
            eprintln!(
                "SKIPPED {test}: redis-server is not installed \
                 (apt-get install redis-server; .ci/run does it)"
            );
            return None;
        }
        Some(Self::start())
    }

    /// Starts a server; panics when it does not come up.
    pub fn start() -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start() {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    fn try_start() -> Result<RedisServer, String> {
        let address = free_loopback_address();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(address.port().to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning redis-server: {e}"))?;
        let mut server = RedisServer { child, address };
        server.wait_until_ready()?;
        Ok(server)
    }

    /// Polls with `PING` until the server answers `PONG`.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < READY_AT_MOST {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut err) = self.child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(format!("redis-server exited ({status}): {stderr}"));
            }
            if ping(self.address) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "no PONG from {} within {READY_AT_MOST:?}",
            self.address
        ))
    }

    /// `redis://127.0.0.1:PORT/DB`.
    pub fn url(&self, db: i64) -> String {
        format!("redis://{}/{db}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The server's process id (benches count its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of one command's line in `INFO commandstats`, e.g.
    /// `("keys", "rejected_calls")`; 0 for a command not called yet.
    pub fn command_stat(&self, command: &str, field: &str) -> u64 {
        command_stat_in(&info(self.address, "commandstats"), command, field)
    }

    /// Commands served so far (all, and `WATCH`) and connections accepted
    /// so far (`INFO`'s `total_connections_received`; the connection asking
    /// counts too).
    pub fn totals(&self) -> RedisTotals {
        let stats = info(self.address, "commandstats");
        let commands = stats
            .lines()
            .filter(|line| line.starts_with("cmdstat_"))
            .filter_map(|line| {
                line.split([':', ','])
                    .find_map(|pair| pair.strip_prefix("calls="))
            })
            .map(|n| n.trim().parse::<u64>().expect("a count"))
            .sum();
        let connections = info(self.address, "stats")
            .lines()
            .find_map(|line| line.strip_prefix("total_connections_received:"))
            .map_or(0, |n| n.trim().parse().expect("a count"));
        RedisTotals {
            commands,
            watches: command_stat_in(&stats, "watch", "calls"),
            connections,
        }
    }
}

/// A field of one command's line in an `INFO commandstats` answer.
fn command_stat_in(stats: &str, command: &str, field: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .into_iter()
        .flat_map(|fields| fields.split(','))
        .find_map(|pair| pair.strip_prefix(field)?.strip_prefix('='))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// Counters of a server's whole life so far ([`RedisServer::totals`]).
#[derive(Clone, Copy, Debug)]
pub struct RedisTotals {
    pub commands: u64,
    pub watches: u64,
    pub connections: u64,
}

/// The bulk answer to `INFO <section>` over a fresh connection.
fn info(address: SocketAddr, section: &str) -> String {
    use std::io::BufRead as _;
    let mut stream = TcpStream::connect(address).expect("connecting to Redis");
    stream
        .write_all(format!("INFO {section}\r\n").as_bytes())
        .expect("sending INFO");
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    reader.read_line(&mut head).expect("reading INFO");
    let length: usize = head
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("INFO answered {head:?}"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("reading INFO");
    String::from_utf8(body).expect("INFO is text")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `redis-server` runs here.
pub fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_loopback_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener.local_addr().expect("a bound address")
}

/// One `PING` over a fresh connection; true on `+PONG`.
fn ping(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}
