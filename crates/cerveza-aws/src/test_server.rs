//! Hand-written HTTP answers for the adapter tests: a server on 127.0.0.1 that answers
//! each request with the next canned response and records what it was asked, so the
//! SDK glue (requests built, answers parsed, errors mapped) is tested without the lab.

use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::AwsOptions;

/// Makes an answer from the requests so far.
pub type Responder = Box<dyn Fn(&[Request]) -> Answer + Send>;

/// What the server answers to one request: fixed, or made from every request so far
/// (to echo what the client sent, such as a random write id).
pub enum Reply {
    /// This answer.
    Fixed(Answer),
    /// The answer made from the requests so far (the current one last).
    From(Responder),
}

impl From<Answer> for Reply {
    fn from(a: Answer) -> Self {
        Reply::Fixed(a)
    }
}

/// One canned answer: status, content type, body.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    /// An EC2 (query protocol) answer.
    pub fn xml(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/xml;charset=UTF-8",
            body: body.to_owned(),
        }
    }

    /// An EC2 error answer with `code`.
    pub fn ec2_error(status: u16, code: &str) -> Self {
        Self::xml(
            status,
            &format!("<Response><Errors><Error><Code>{code}</Code><Message>canned {code}</Message></Error></Errors><RequestID>r</RequestID></Response>"),
        )
    }

    /// A DynamoDB (JSON 1.0) answer.
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "application/x-amz-json-1.0",
            body: body.to_owned(),
        }
    }
}

/// One request as received: the `X-Amz-Target` header (DynamoDB) and the body.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: String,
    pub body: String,
}

/// The server and what it was asked.
pub struct Canned {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Canned {
    /// Serves `answers` in order, one per request (a request past the last gets a 500).
    pub async fn serve(answers: Vec<Answer>) -> Self {
        Self::reply(answers.into_iter().map(Reply::from).collect()).await
    }

    /// Serves `replies` in order, one per request.
    pub async fn reply(answers: Vec<Reply>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            while let Ok((mut conn, _)) = listener.accept().await {
                let Some(req) = read_request(&mut conn).await else {
                    continue;
                };
                let so_far = {
                    let mut seen = seen.lock().expect("lock");
                    seen.push(req);
                    seen.clone()
                };
                let a = match answers.next() {
                    Some(Reply::Fixed(a)) => a,
                    Some(Reply::From(f)) => f(&so_far),
                    None => Answer::json(500, "{\"message\":\"no more canned answers\"}"),
                };
                let head = format!(
                    "HTTP/1.1 {} Canned\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    a.status,
                    a.content_type,
                    a.body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(a.body.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        });
        Self { url, requests }
    }

    /// A server that accepts connections and never answers (a black-holed region).
    pub async fn silent() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        Self {
            url,
            requests: Arc::default(),
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// An SDK config pointed at this server: test credentials, one attempt, no rate
    /// limit.
    pub async fn sdk(&self) -> SdkConfig {
        // Static test credentials through the standard chain (the same values for every
        // test, so tests running at once agree).
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        crate::sdk_config(&AwsOptions {
            endpoint_url: Some(self.url.clone()),
            max_attempts: 1,
            max_request_rate: 0,
            ..AwsOptions::default()
        })
        .await
    }
}

async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        target: header("x-amz-target").unwrap_or_default(),
        body: String::from_utf8_lossy(&buf[head_end..]).into_owned(),
    })
}
