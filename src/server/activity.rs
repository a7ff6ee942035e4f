//! When a connection must close: a request head must arrive within the header-read timeout,
//! counted from its first byte (for the first request, from the start of the connection); a
//! kept-alive connection with no request in flight closes after the idle timeout; a request
//! in flight (until its response body is handed to the socket) is never cut off.
//!
//! hyper 1.x has a `header_read_timeout`, but it starts as soon as a kept-alive connection
//! goes idle, so idle connections would close after the header-read timeout and no longer
//! idle timeout could be offered. We time both here instead and leave hyper's off.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;

/// What a connection is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// The rest of a request head.
    Head,
    /// The next request on a kept-alive connection.
    Idle,
}

/// One connection's timing, shared by its socket, its requests and its watchdog.
pub(super) struct Activity {
    limits: Limits,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    in_flight: usize,
    waiting: Wait,
    since: Instant,
}

impl Activity {
    /// A connection that has to send its first request head within the header-read timeout.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Activity {
            limits,
            state: Mutex::new(State {
                in_flight: 0,
                waiting: Wait::Head,
                since: Instant::now(),
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection must close, and why; `None` while a request is in flight.
    pub fn deadline(&self) -> Option<(Instant, Wait)> {
        let s = self.state();
        if s.in_flight > 0 {
            return None;
        }
        let timeout = match s.waiting {
            Wait::Head => self.limits.header_read_timeout,
            Wait::Idle => self.limits.idle_timeout,
        };
        Some((s.since + timeout, s.waiting))
    }

    pub fn in_flight(&self) -> bool {
        self.state().in_flight > 0
    }

    /// Resolves after the deadline may have moved.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Bytes arrived: on an idle connection they begin a request head.
    fn received(&self) {
        let mut s = self.state();
        if s.in_flight == 0 && s.waiting == Wait::Idle {
            s.waiting = Wait::Head;
            s.since = Instant::now();
            drop(s);
            self.changed.notify_one();
        }
    }

    /// A request head arrived; the request is in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.state().in_flight += 1;
        InFlight(self.clone())
    }
}

/// A request in flight.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.in_flight -= 1;
        if s.in_flight == 0 {
            s.waiting = Wait::Idle;
            s.since = Instant::now();
            drop(s);
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until hyper has taken all of it.
pub(super) struct InFlightBody {
    pub body: Body,
    pub _in_flight: InFlight,
}

impl hyper::body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's byte stream, telling its [`Activity`] when bytes arrive.
pub(super) struct Watched<S> {
    pub io: S,
    pub activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }

    #[test]
    fn the_deadline_follows_heads_requests_and_idleness() {
        let a = Activity::new(limits());
        let (first, why) = a.deadline().unwrap();
        assert_eq!(why, Wait::Head);
        assert!(first <= Instant::now() + Duration::from_secs(10));
        // Bytes of the first head do not restart its clock.
        a.received();
        assert_eq!(a.deadline().unwrap().0, first);
        let request = a.begin();
        assert!(a.deadline().is_none() && a.in_flight());
        a.received();
        assert!(a.deadline().is_none(), "body bytes change nothing");
        drop(request);
        let (idle, why) = a.deadline().unwrap();
        assert_eq!(why, Wait::Idle);
        assert!(idle >= first + Duration::from_secs(100));
        a.received();
        assert_eq!(a.deadline().unwrap().1, Wait::Head);
    }
}
