//! Tests of the client: limits, retries, and answers a wrong or hostile endpoint gives,
//! each against a server on loopback.

use super::*;
use crate::digitalocean::client::{DIALECT as DO, PER_HOUR, PER_MINUTE};
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// The status and message of a call that must fail with one.
async fn status_failure(
    api: std::net::SocketAddr,
    method: Method,
    path: &str,
    body: Option<&Json>,
    call: Call,
) -> (u16, String) {
    let client = Client::new(&DO, &format!("http://{api}"), "t", Retries::default()).unwrap();
    match client.send(method, path, body, call).await {
        Err(Failure::Status { status, message }) => (status, message),
        other => panic!("not a status failure: {other:?}"),
    }
}

/// A one-connection HTTP server on loopback that answers every request with `answer`;
/// returns its address and the requests it received. The provider's tests use it too.
pub(crate) async fn server(
    answer: String,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = conn.write_all(answer.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_redirect_is_an_error_naming_both_hosts_and_nothing_goes_to_the_other() {
    let (elsewhere, received) =
        server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".into()).await;
    let (api, _) = server(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere}/v2/droplets\r\ncontent-length: 0\r\n\r\n"
    ))
    .await;
    let body = serde_json::json!({"user_data": "host private keys"});
    let (status, message) =
        status_failure(api, Method::POST, "/v2/droplets", Some(&body), Call::Create).await;
    assert_eq!(status, 307);
    assert!(message.contains(&api.to_string()), "{message}");
    assert!(message.contains(&elsewhere.to_string()), "{message}");
    assert!(
        received.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
}

/// A server whose every answer says there is a next page, and one more item.
async fn endless_pages() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let page: u64 = request
                .split("page=")
                .nth(1)
                .and_then(|p| p.split(['&', ' ']).next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let body = format!(
                r#"{{"droplets":[{{"id":{page}}}],"links":{{"pages":{{"next":"http://{addr}/v2/droplets?page={}"}}}}}}"#,
                page + 1
            );
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });
    addr
}

#[tokio::test]
async fn a_listing_whose_pages_never_end_stops_with_an_error() {
    let api = endless_pages().await;
    let client = Client::new(&DO, &format!("http://{api}"), "t", Retries::default()).unwrap();
    let failure = client
        .list_of::<Json>("/v2/droplets", "droplets")
        .await
        .unwrap_err();
    let Failure::Status { message, .. } = failure else {
        panic!("not a status failure: {failure:?}");
    };
    assert!(message.contains("100 pages"), "{message}");
}

#[tokio::test]
async fn a_body_past_the_cap_is_an_error_not_memory() {
    let huge = MAX_BODY + 1;
    let (api, _) = server(format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {huge}\r\n\r\n{}",
        "x".repeat(huge)
    ))
    .await;
    let (_, message) =
        status_failure(api, Method::GET, "/v2/droplets", None, Call::Idempotent).await;
    assert!(message.contains("32 MiB"), "{message}");
}

#[tokio::test]
async fn a_404_that_is_not_the_apis_error_is_not_gone() {
    let page = "<html>Not Found</html>";
    let (api, _) = server(format!(
        "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\n\r\n{page}",
        page.len()
    ))
    .await;
    let (status, message) =
        status_failure(api, Method::GET, "/v2/droplets/7", None, Call::Idempotent).await;
    assert_eq!(status, 404);
    assert!(
        message.contains("without the API's error body"),
        "{message}"
    );
    // The API's own 404 is an answer: the droplet is gone.
    let body =
        r#"{"id":"not_found","message":"The resource you were accessing could not be found."}"#;
    let (api, _) = server(format!(
        "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let client = Client::new(&DO, &format!("http://{api}"), "t", Retries::default()).unwrap();
    let answer = client
        .send(Method::GET, "/v2/droplets/7", None, Call::Idempotent)
        .await
        .unwrap();
    assert_eq!(answer.status, 404);
}

/// A server on loopback answering every request 200 with `body` as JSON.
async fn answering(body: &Json) -> std::net::SocketAddr {
    let body = body.to_string();
    let (api, _) = server(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await;
    api
}

/// The status and message of an answer that must not parse.
fn malformed_failure<T: std::fmt::Debug>(out: Result<T, Failure>) -> (u16, String) {
    match out {
        Err(Failure::Malformed { status, message }) => (status, message),
        other => panic!("not a malformed answer: {other:?}"),
    }
}

#[tokio::test]
async fn a_success_that_is_not_json_is_an_error_naming_the_call() {
    let page = "<html><body>Welcome</body></html>";
    let (api, _) = server(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{page}",
        page.len()
    ))
    .await;
    let client = Client::new(&DO, &format!("http://{api}"), "t", Retries::default()).unwrap();
    let (status, message) = malformed_failure(
        client
            .send(Method::GET, "/v2/droplets/7", None, Call::Idempotent)
            .await,
    );
    assert_eq!(status, 200);
    assert!(message.contains("GET /v2/droplets/7"), "{message}");
    assert!(message.contains("not JSON"), "{message}");
}

#[tokio::test]
async fn a_success_of_the_wrong_types_is_an_error_naming_the_call_and_the_field() {
    use crate::digitalocean::answer::Droplet;
    // JSON, and a droplet's keys, but not a droplet's types.
    let api = answering(&serde_json::json!({"droplet": {
        "id": "7", "name": "agent1", "status": "active", "locked": "no",
        "size_slug": "s-1vcpu-1gb", "networks": {"v4": []}, "tags": []
    }}))
    .await;
    let client = Client::new(&DO, &format!("http://{api}"), "t", Retries::default()).unwrap();
    let (status, message) =
        malformed_failure(client.get::<Droplet>("/v2/droplets/7", "droplet").await);
    assert_eq!(status, 200);
    assert!(
        message.starts_with("GET /v2/droplets/7: the answer's `droplet.id` does not parse:"),
        "{message}"
    );
    // In a listing, the page's call and the item are named: never an item skipped.
    let api = answering(&serde_json::json!({
        "droplets": [{"id": 7, "name": "agent1", "status": "active", "locked": false,
                      "size_slug": "s-1vcpu-1gb", "networks": {"v4": [
                          {"ip_address": "*", "type": "public"}]}, "tags": []}],
        "links": {}, "meta": {"total": 1}
    }))
    .await;
    let client = Client::new(&DO, &format!("http://{api}"), "t", Retries::default()).unwrap();
    let (_, message) = malformed_failure(
        client
            .list_of::<Droplet>("/v2/droplets?tag_name=x", "droplets")
            .await,
    );
    assert_eq!(
        message,
        "GET /v2/droplets?tag_name=x&page=1&per_page=200: the answer's \
         `droplets[0].networks.v4[0].ip_address` does not parse: invalid IP address syntax"
    );
    // A listing without its list is no listing.
    let api = answering(&serde_json::json!({"links": {}})).await;
    let client = Client::new(&DO, &format!("http://{api}"), "t", Retries::default()).unwrap();
    let (_, message) = malformed_failure(client.list_of::<Json>("/v2/vpcs", "vpcs").await);
    assert!(message.contains("has no `vpcs` list"), "{message}");
}

#[test]
fn next_page_is_read_from_the_link_whatever_its_host() {
    assert_eq!(
        page_of("http://127.0.0.1:4010/v2/droplets?page=3&per_page=200&tag_name=x"),
        Some(3)
    );
    assert_eq!(page_of("https://api.digitalocean.com/v2/droplets"), None);
}

#[test]
fn messages_come_from_digitalocean_errors_and_proxy_problems() {
    let m = message_of(
        &serde_json::json!({"id": "unauthorized", "message": "Unable to authenticate you"}),
    );
    assert_eq!(m, "Unable to authenticate you");
    let m = message_of(&serde_json::json!({
        "title": "Invalid request", "detail": "Your request is not valid",
        "validation": [{"location": ["body", "ssh_keys"], "message": "must be array"}]
    }));
    assert_eq!(
        m,
        "Invalid request: Your request is not valid [body.ssh_keys must be array]"
    );
}

#[tokio::test(start_paused = true)]
async fn the_window_never_lets_more_than_its_cap_through_in_a_period() {
    let limiter = Limiter::new(Budget::Windows {
        per_minute: 3,
        per_hour: 100,
    });
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..7 {
        limiter.acquire().await;
        times.push(start.elapsed());
    }
    // Three at once, three a minute later, one two minutes later.
    assert_eq!(times[2], Duration::ZERO);
    assert_eq!(times[3], Duration::from_secs(60));
    assert_eq!(times[5], Duration::from_secs(60));
    assert_eq!(times[6], Duration::from_secs(120));
    for (i, t) in times.iter().enumerate() {
        let in_window = times
            .iter()
            .filter(|u| **u <= *t && *t - **u < Duration::from_secs(60))
            .count();
        assert!(in_window <= 3, "request {i} had {in_window} in its window");
    }
}

/// Hetzner's shape: a bucket spent at once, then one request per refill, and the server's
/// `ratelimit-remaining` lowers what the bucket holds (another client on the same token).
#[tokio::test(start_paused = true)]
async fn the_bucket_spends_its_capacity_then_one_per_refill_and_follows_the_server() {
    let limiter = Limiter::new(Budget::Bucket {
        capacity: 3,
        per_hour: 3600,
    });
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..5 {
        limiter.acquire().await;
        times.push(start.elapsed());
    }
    assert_eq!(times[2], Duration::ZERO);
    let close = |t: Duration, s: f64| (t.as_secs_f64() - s).abs() < 0.01;
    assert!(close(times[3], 1.0), "{times:?}");
    assert!(close(times[4], 2.0), "{times:?}");
    // After 10 s the bucket is full again (3), but the server says 0 remain for 5 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut h = HeaderMap::new();
    h.insert("ratelimit-remaining", "0".parse().unwrap());
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 5;
    h.insert("ratelimit-reset", reset.to_string().parse().unwrap());
    limiter.observe(&h).await;
    let before = Instant::now();
    limiter.acquire().await;
    assert!(
        before.elapsed() >= Duration::from_millis(900),
        "the bucket was not emptied: {:?}",
        before.elapsed()
    );
}

/// At the settings the client uses (240 a minute, 4,900 an hour), over 5,500 requests (past
/// the hourly cap): no 60 s window holds more than 240, no hour more than 4,900, and the
/// limiter does not hold back more than it must (the 241st waits exactly a minute; the
/// 4,901st waits for the hour). The tokio clock is paused: no real time passes.
#[tokio::test(start_paused = true)]
async fn the_limiter_at_its_real_settings_keeps_under_both_caps() {
    let limiter = Limiter::new(DO.budget);
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..5_500 {
        limiter.acquire().await;
        times.push(start.elapsed());
    }
    let most_within = |period: Duration| {
        let mut first = 0;
        let mut most = 0;
        for (i, t) in times.iter().enumerate() {
            while *t - times[first] >= period {
                first += 1;
            }
            most = most.max(i + 1 - first);
        }
        most
    };
    assert_eq!(most_within(Duration::from_secs(60)), PER_MINUTE);
    assert_eq!(most_within(Duration::from_secs(3600)), PER_HOUR);
    assert_eq!(times[PER_MINUTE - 1], Duration::ZERO);
    assert_eq!(times[PER_MINUTE], Duration::from_secs(60));
    assert!(
        times[PER_HOUR] >= Duration::from_secs(3600),
        "{:?}",
        times[PER_HOUR]
    );
}

#[test]
fn a_429_waits_for_retry_after_else_for_the_reset() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("3"));
    h.insert("ratelimit-reset", HeaderValue::from_static("1"));
    assert_eq!(wait_for_429(&h), Some(Duration::from_secs(3)));
    let mut h = HeaderMap::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    h.insert(
        "ratelimit-reset",
        HeaderValue::from_str(&(now + 20).to_string()).unwrap(),
    );
    let wait = wait_for_429(&h).unwrap();
    assert!(
        wait > Duration::from_secs(18) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
    assert_eq!(wait_for_429(&HeaderMap::new()), None);
}

#[test]
fn debug_output_hides_the_token() {
    let c = Client::new(
        &DO,
        "http://127.0.0.1:1",
        "dop_v1_secret",
        Retries::default(),
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("dop_v1_secret"), "{shown}");
    assert!(shown.contains("redacted"));
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_after_two_tries() {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            if conn.read(&mut buf).await.unwrap_or(0) > 0 {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            // Read, and never a byte back: the connection stays open and silent.
            open.push(conn);
        }
    });
    let retries = Retries {
        request_timeout: Duration::from_millis(300),
        base: Duration::from_millis(1),
        ..Retries::default()
    };
    let client = Client::new(&DO, &format!("http://{api}"), "t", retries).unwrap();
    let out = client
        .send(Method::GET, "/v2/account", None, Call::Idempotent)
        .await;
    match out {
        Err(Failure::Unreachable(m)) => {
            assert!(m.contains("GET /v2/account"), "{m}");
            assert!(m.contains("gave no answer within 0.3 s, 2 times"), "{m}");
        }
        other => panic!("not given up on: {other:?}"),
    }
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
    // By default a silent server costs two tries of 30 s: well under the five tries of
    // 60 s it cost before.
    let d = Retries::default();
    assert_eq!(
        d.request_timeout * d.timeout_attempts,
        Duration::from_secs(60)
    );
}
