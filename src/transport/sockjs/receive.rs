//! The HTTP receiving transports: `xhr` and `jsonp` polling (one frame per request) and the
//! `xhr_streaming`, `eventsource` and `htmlfile` streams (a prelude, then frames until the
//! response byte limit). Each receiving request gets a small pump task writing into the
//! response body; when the client drops the response, the pump sees it and the session closes.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;

use super::frames;
use super::http as h;
use super::session::{Attach, Event, Session};
use crate::transport::{HttpBody, TransportKind};

/// Longest accepted `c` (callback) parameter.
const MAX_CALLBACK_LEN: usize = 128;

/// The `htmlfile` page head; `{cb}` is the callback.
const HTMLFILE_HEAD: &str = "<!doctype html>\n<html><head>\n  \
<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
</head><body><h2>Don't panic!</h2>\n  <script>\n    document.domain = document.domain;\n    \
var c = parent.{cb};\n    c.start();\n    function p(d) {c.message(d);};\n    \
window.onload = function() {c.stop();};\n  </script>";

/// A receiving transport and how it wraps frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// `xhr`: one frame per request, `\n`-terminated.
    XhrPolling,
    /// `xhr_streaming`: 2 KiB of `h` prelude, then `\n`-terminated frames.
    XhrStreaming,
    /// `eventsource`: `data: <frame>\r\n\r\n`.
    EventSource,
    /// `htmlfile`: an HTML page calling `p("<frame>")` per frame.
    HtmlFile,
    /// `jsonp`: one `/**/cb("<frame>");` per request.
    Jsonp,
}

impl Receiver {
    /// The transport for a URL segment.
    pub fn from_name(name: &str) -> Option<Receiver> {
        Some(match name {
            "xhr" => Receiver::XhrPolling,
            "xhr_streaming" => Receiver::XhrStreaming,
            "eventsource" => Receiver::EventSource,
            "htmlfile" => Receiver::HtmlFile,
            "jsonp" => Receiver::Jsonp,
            _ => return None,
        })
    }

    /// The transport kind reported in [`crate::transport::ClientMeta`].
    pub fn kind(self) -> TransportKind {
        match self {
            Receiver::XhrPolling => TransportKind::SockjsXhrPolling,
            Receiver::XhrStreaming => TransportKind::SockjsXhrStreaming,
            Receiver::EventSource => TransportKind::SockjsEventsource,
            Receiver::HtmlFile => TransportKind::SockjsHtmlfile,
            Receiver::Jsonp => TransportKind::SockjsJsonp,
        }
    }

    /// Whether it needs the `c` callback parameter.
    pub fn needs_callback(self) -> bool {
        matches!(self, Receiver::HtmlFile | Receiver::Jsonp)
    }

    fn streaming(self) -> bool {
        !matches!(self, Receiver::XhrPolling | Receiver::Jsonp)
    }

    fn content_type(self) -> &'static str {
        match self {
            Receiver::XhrPolling | Receiver::XhrStreaming | Receiver::Jsonp => h::JAVASCRIPT,
            Receiver::EventSource => h::EVENT_STREAM,
            Receiver::HtmlFile => h::HTML,
        }
    }
}

/// A receiver with its callback: turns frames into response bytes.
#[derive(Debug, Clone)]
pub struct Framer {
    receiver: Receiver,
    callback: String,
}

impl Framer {
    /// A framer; `callback` must already be validated for `htmlfile` and `jsonp`.
    pub fn new(receiver: Receiver, callback: String) -> Framer {
        Framer { receiver, callback }
    }

    /// What a streaming response starts with.
    fn prelude(&self) -> Option<Bytes> {
        match self.receiver {
            Receiver::XhrStreaming => {
                let mut p = vec![b'h'; 2048];
                p.push(b'\n');
                Some(p.into())
            }
            Receiver::EventSource => Some(Bytes::from_static(b"\r\n")),
            Receiver::HtmlFile => {
                let mut page = HTMLFILE_HEAD.replace("{cb}", &self.callback);
                // Browsers render incrementally only after about 1 KiB.
                let pad = 1025usize.saturating_sub(page.len());
                page.push('\n');
                page.extend(std::iter::repeat_n(' ', pad));
                page.push_str("\r\n\r\n");
                Some(page.into())
            }
            Receiver::XhrPolling | Receiver::Jsonp => None,
        }
    }

    /// One frame as response bytes. The xhr transports (the common ones) end the frame's own
    /// string with a newline instead of copying it.
    pub fn wrap(&self, mut frame: String) -> Bytes {
        match self.receiver {
            Receiver::XhrPolling | Receiver::XhrStreaming => {
                frame.push('\n');
                frame
            }
            Receiver::EventSource => format!("data: {frame}\r\n\r\n"),
            Receiver::HtmlFile => {
                format!("<script>\np({});\n</script>\r\n", frames::js_string(&frame))
            }
            Receiver::Jsonp => format!("/**/{}({});\r\n", self.callback, frames::js_string(&frame)),
        }
        .into()
    }
}

/// Checks a JSONP/htmlfile callback name: `[A-Za-z0-9_.]`, bounded.
pub fn valid_callback(cb: &str) -> bool {
    !cb.is_empty()
        && cb.len() <= MAX_CALLBACK_LEN
        && cb
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// The response headers every receiving transport sends.
fn start_response(framer: &Framer, body: HttpBody) -> Response<HttpBody> {
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::OK;
    h::set(
        res.headers_mut(),
        http::header::CONTENT_TYPE,
        framer.receiver.content_type(),
    );
    h::no_cache(res.headers_mut());
    res
}

/// Serves one receiving request on `session` (headers at once, frames as they come).
pub fn receive(
    session: &Arc<Session>,
    framer: Framer,
    response_limit: usize,
) -> Response<HttpBody> {
    let id = match session.attach() {
        Attach::Attached(id) => id,
        Attach::Busy => {
            let (code, reason) = frames::ANOTHER_CONNECTION;
            return one_frame(&framer, &frames::close_frame(code, reason));
        }
        Attach::Closed(code, reason) => {
            return one_frame(&framer, &frames::close_frame(code, &reason));
        }
    };
    let (out, body) = mpsc::channel::<Bytes>(2);
    let mut body = body;
    let stream = futures_util::stream::poll_fn(move |cx| {
        body.poll_recv(cx)
            .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    });
    let res = start_response(&framer, StreamBody::new(stream).boxed());
    tokio::spawn(run_pump(session.clone(), id, framer, out, response_limit));
    res
}

/// A response carrying the prelude and one frame, with no session involved. Streamed as
/// sockjs-node does (chunked: the prelude, the frame, the end), not as one sized body: a
/// client reading the stream incrementally handles it like any other receiving response.
fn one_frame(framer: &Framer, frame: &str) -> Response<HttpBody> {
    let chunks: Vec<Bytes> = framer
        .prelude()
        .into_iter()
        .chain(std::iter::once(framer.wrap(frame.to_owned())))
        .collect();
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|b| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b))),
    );
    start_response(framer, StreamBody::new(stream).boxed())
}

/// Writes frames for receiver `id` until done, then detaches it.
async fn run_pump(
    session: Arc<Session>,
    id: u64,
    framer: Framer,
    out: mpsc::Sender<Bytes>,
    limit: usize,
) {
    let aborted = pump_frames(&session, &framer, &out, limit).await;
    session.detach(id, aborted);
}

/// The pump loop; `true` when the client went away before the response was complete.
async fn pump_frames(
    session: &Session,
    framer: &Framer,
    out: &mpsc::Sender<Bytes>,
    limit: usize,
) -> bool {
    if let Some(prelude) = framer.prelude() {
        if out.send(prelude).await.is_err() {
            return true;
        }
    }
    let heartbeat = session.limits().heartbeat;
    let sleep = tokio::time::sleep(heartbeat);
    tokio::pin!(sleep);
    let mut changes = session.subscribe();
    let mut written = 0usize;
    loop {
        let event = tokio::select! {
            biased;
            () = out.closed() => return true,
            ev = session.next_event(&mut changes, sleep.as_mut()) => ev,
        };
        let (frame, last) = match event {
            Event::Open => (frames::OPEN.to_owned(), false),
            Event::Heartbeat => (frames::HEARTBEAT.to_owned(), false),
            Event::Messages(m) => (frames::messages_frame(&m), false),
            Event::Close(code, reason) => (frames::close_frame(code, &reason), true),
        };
        let chunk = framer.wrap(frame);
        written += chunk.len();
        if out.send(chunk).await.is_err() {
            return true;
        }
        if last || !framer.receiver.streaming() || written >= limit {
            return false;
        }
        sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + heartbeat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_frames_per_transport() {
        let f = |r| Framer::new(r, "cb".into());
        assert_eq!(f(Receiver::XhrPolling).wrap("o".into()), "o\n");
        assert_eq!(
            f(Receiver::XhrStreaming).wrap(r#"a["x"]"#.into()),
            "a[\"x\"]\n"
        );
        assert_eq!(f(Receiver::EventSource).wrap("o".into()), "data: o\r\n\r\n");
        assert_eq!(
            f(Receiver::HtmlFile).wrap(r#"a["x"]"#.into()),
            "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
        );
        assert_eq!(f(Receiver::Jsonp).wrap("o".into()), "/**/cb(\"o\");\r\n");
    }

    #[test]
    fn preludes() {
        let xs = Framer::new(Receiver::XhrStreaming, String::new())
            .prelude()
            .unwrap();
        assert_eq!(xs.len(), 2049);
        assert!(xs[..2048].iter().all(|b| *b == b'h') && xs[2048] == b'\n');
        let html = Framer::new(Receiver::HtmlFile, "callback".into())
            .prelude()
            .unwrap();
        let text = std::str::from_utf8(&html).unwrap();
        assert!(html.len() > 1024);
        assert_eq!(text.trim(), HTMLFILE_HEAD.replace("{cb}", "callback"));
        assert!(Framer::new(Receiver::XhrPolling, String::new())
            .prelude()
            .is_none());
    }

    #[test]
    fn callbacks() {
        assert!(valid_callback("callback"));
        assert!(valid_callback("a.b_c9"));
        assert!(!valid_callback(""));
        assert!(!valid_callback("a(b)"));
        assert!(!valid_callback("a</script>"));
        assert!(!valid_callback(&"a".repeat(MAX_CALLBACK_LEN + 1)));
    }
}
