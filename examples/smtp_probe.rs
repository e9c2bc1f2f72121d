//! A load and latency probe for `make bench` (not shipped): S client threads each send messages
//! over one SMTP session (RSET between them), and every message's time from writing the final
//! `.` to reading the `250` is recorded, and its whole transaction's (from writing MAIL to that
//! `250`, so a server that makes DATA wait for its `354` shows it). Prints one JSON line with the
//! rate and p50/p99 of both.
//!
//! usage: smtp_probe ADDR SESSIONS MESSAGES SIZE_BYTES RCPT

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn reply(r: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] == b' ' {
            return Ok(all);
        }
    }
}

fn expect(r: &mut BufReader<TcpStream>, code: &str) -> std::io::Result<()> {
    let got = reply(r)?;
    if got.starts_with(code) {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "expected {code}, got {got:?}"
        )))
    }
}

fn session(
    addr: &str,
    count: usize,
    body: &[u8],
    rcpt: &str,
    lat: &Mutex<Vec<(Duration, Duration)>>,
) -> std::io::Result<()> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    expect(&mut r, "220")?;
    w.write_all(b"EHLO probe.example\r\n")?;
    expect(&mut r, "250")?;
    let mut mine = Vec::with_capacity(count);
    for _ in 0..count {
        // Pipelined envelope, as smtp-source does.
        let start = Instant::now();
        w.write_all(
            format!("MAIL FROM:<probe@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n").as_bytes(),
        )?;
        expect(&mut r, "250")?;
        expect(&mut r, "250")?;
        expect(&mut r, "354")?;
        w.write_all(body)?;
        let t = Instant::now();
        w.write_all(b".\r\n")?;
        expect(&mut r, "250")?;
        mine.push((t.elapsed(), start.elapsed()));
        w.write_all(b"RSET\r\n")?;
        expect(&mut r, "250")?;
    }
    w.write_all(b"QUIT\r\n")?;
    let _ = reply(&mut r);
    lat.lock().unwrap().extend(mine);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: smtp_probe ADDR SESSIONS MESSAGES SIZE_BYTES RCPT");
        std::process::exit(2);
    }
    let (addr, sessions, messages, size, rcpt) = (
        args[1].clone(),
        args[2].parse::<usize>().unwrap(),
        args[3].parse::<usize>().unwrap(),
        args[4].parse::<usize>().unwrap(),
        args[5].clone(),
    );
    let mut body = b"From: probe@example.org\r\nSubject: probe\r\n\r\n".to_vec();
    while body.len() < size {
        body.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n",
        );
    }
    let body = Arc::new(body);
    let lat = Arc::new(Mutex::new(Vec::with_capacity(messages)));
    let start = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|i| {
            let per = messages / sessions + usize::from(i < messages % sessions);
            let (addr, body, rcpt, lat) = (addr.clone(), body.clone(), rcpt.clone(), lat.clone());
            std::thread::spawn(move || session(&addr, per, &body, &rcpt, &lat))
        })
        .collect();
    let mut failed = 0;
    for t in threads {
        if let Err(e) = t.join().unwrap() {
            eprintln!("session failed: {e}");
            failed += 1;
        }
    }
    let elapsed = start.elapsed();
    let both = lat.lock().unwrap().clone();
    let sorted = |pick: fn(&(Duration, Duration)) -> Duration| {
        let mut v: Vec<Duration> = both.iter().map(pick).collect();
        v.sort();
        v
    };
    let (dot, txn) = (sorted(|p| p.0), sorted(|p| p.1));
    let pct = |l: &[Duration], p: f64| {
        l.get(((l.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"messages\":{},\"failed_sessions\":{failed},\"seconds\":{:.3},\"per_second\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"txn_p50_ms\":{:.3},\"txn_p99_ms\":{:.3}}}",
        dot.len(),
        elapsed.as_secs_f64(),
        dot.len() as f64 / elapsed.as_secs_f64(),
        pct(&dot, 0.50),
        pct(&dot, 0.99),
        pct(&txn, 0.50),
        pct(&txn, 0.99)
    );
}
