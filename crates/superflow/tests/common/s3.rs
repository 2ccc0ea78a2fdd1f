//! An S3 server for tests of checkpoint storage in an object store: moto's, run as a
//! child process (`python3 -m moto.server`, from `pip install 'moto[server]'`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto S3 server on a free local port, with one bucket; stopped when dropped.
pub struct MotoServer {
    child: Child,
    port: u16,
    bucket: String,
}

impl MotoServer {
    /// Starts the server and creates `bucket`. Panics with what to install if moto is
    /// missing.
    pub fn start(bucket: &str) -> MotoServer {
        let port = super::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 for the S3 server (moto): {e}"));
        let mut server = MotoServer {
            child,
            port,
            bucket: bucket.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                if let Some(stderr) = server.child.stderr.as_mut() {
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!(
                    "the S3 server (moto) exited ({status}): {err}\n\
                     install it with: python3 -m pip install 'moto[server]'"
                );
            }
            assert!(
                Instant::now() < deadline,
                "the S3 server (moto) did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let (status, body) = server.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
        server
    }

    /// The URL of `prefix` in the bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The variables a process needs to reach the server (the object store reads
    /// them as the AWS tools do).
    pub fn environment(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The keys in the bucket under `prefix` (up to a thousand).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self.request(
            "GET",
            &format!("/{}?list-type=2&prefix={prefix}", self.bucket),
        );
        assert_eq!(status, 200, "listing {prefix}: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect()
    }

    /// An unsigned HTTP/1.0 request (moto does not check signatures): its status and
    /// body.
    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("cannot reach the S3 server: {e}"));
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        let mut response = String::new();
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.read_to_string(&mut response))
            .unwrap_or_else(|e| panic!("{method} {path} on the S3 server: {e}"));
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, body)| body.to_string());
        (status, body)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
