//! The notification API's load client for `make bench` (not shipped): C client threads each POST
//! their share of notifications to `/api/v1/notifications` over one keep-alive HTTP/1.1
//! connection to herald's control socket, all starting together, and every request's time from
//! writing it to reading the whole answer is recorded. Prints one JSON line: the ids herald
//! answered `202` with, every latency in ms, the connections made and the errors.
//!
//! Why not Python: 8 Python client processes took about 215 µs of CPU a request, half a core of
//! the 2 the bench machine has, taken from the service measured; Postfix's side is fed by
//! smtp-source, which is C.
//!
//! usage: api_load SOCKET CLIENTS MESSAGES TOKEN BODY_FILE

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What one client thread sends back.
#[derive(Default)]
struct Share {
    ids: Vec<String>,
    latencies: Vec<Duration>,
    connects: usize,
    error: Option<String>,
}

/// Reads one answer: status code and body (`Content-Length` framing, as herald answers).
fn answer(r: &mut BufReader<UnixStream>) -> Result<(u16, Vec<u8>), String> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("reading the status line: {e}"))?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
    let mut length = None;
    loop {
        line.clear();
        r.read_line(&mut line)
            .map_err(|e| format!("reading a header: {e}"))?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unexpected framing: {}", line.trim()));
        }
    }
    let mut body = vec![0; length.ok_or("an answer without Content-Length")?];
    r.read_exact(&mut body)
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok((status, body))
}

fn connect(socket: &str) -> Result<(UnixStream, BufReader<UnixStream>), String> {
    let s = UnixStream::connect(socket).map_err(|e| format!("connect {socket}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let w = s.try_clone().map_err(|e| e.to_string())?;
    Ok((w, BufReader::new(s)))
}

fn requests(
    (w, r): &mut (UnixStream, BufReader<UnixStream>),
    count: usize,
    request: &[u8],
    share: &mut Share,
) -> Result<(), String> {
    for _ in 0..count {
        let t = Instant::now();
        w.write_all(request)
            .map_err(|e| format!("writing a request: {e}"))?;
        let (status, body) = answer(r)?;
        share.latencies.push(t.elapsed());
        if status != 202 {
            let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(format!("POST answered {status}: {shown}"));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("answer not JSON: {e}"))?;
        let id = v["id"].as_str().ok_or("an answer without an id")?;
        share.ids.push(id.to_string());
    }
    Ok(())
}

/// One client: connects, waits for the others, then sends its share.
fn client(socket: &str, count: usize, request: &[u8], start: &Barrier) -> Share {
    let mut share = Share::default();
    let conn = connect(socket);
    // Every thread reaches the barrier, connected or not, so none is left waiting.
    start.wait();
    let result = conn.and_then(|mut c| {
        share.connects += 1;
        requests(&mut c, count, request, &mut share)
    });
    share.error = result.err();
    share
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: api_load SOCKET CLIENTS MESSAGES TOKEN BODY_FILE");
        std::process::exit(2);
    }
    let (socket, clients, messages, token) = (
        args[1].clone(),
        args[2].parse::<usize>().expect("CLIENTS is a number"),
        args[3].parse::<usize>().expect("MESSAGES is a number"),
        &args[4],
    );
    let body = std::fs::read(&args[5]).expect("BODY_FILE can be read");
    let mut request = format!(
        "POST /api/v1/notifications HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let request = Arc::new(request);
    // The clients connect first; the requests start together.
    let start = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let per = messages / clients + usize::from(i < messages % clients);
            let (socket, request, start) = (socket.clone(), request.clone(), start.clone());
            std::thread::spawn(move || client(&socket, per, &request, &start))
        })
        .collect();
    let shares: Vec<Share> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let out = serde_json::json!({
        "ids": shares.iter().flat_map(|s| s.ids.iter()).collect::<Vec<_>>(),
        "latencies_ms": shares
            .iter()
            .flat_map(|s| s.latencies.iter().map(|d| d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>(),
        "connects": shares.iter().map(|s| s.connects).sum::<usize>(),
        "errors": shares.iter().filter_map(|s| s.error.clone()).collect::<Vec<_>>(),
    });
    println!("{out}");
}
