//! The framed protocol, server side: one connection from a peer carries its appends, votes
//! and pre-votes, many in flight. Each request is checked as an HTTP one would be (the
//! certificate's node must not be refused by the replicated state, and a Raft message must
//! speak for that node), handled in a task of its own, and answered with its id as soon as
//! it is done; answers that are ready together go out in one write.
//!
//! Limits: the first frame must begin within the port's header-read timeout (the handshake
//! had that long too), a begun frame must keep coming within it, a connection with nothing
//! in flight closes after the idle timeout, a frame over [`frame::MAX_PAYLOAD`] (or of a
//! kind it does not know) is refused and the connection closed, at most [`MAX_IN_FLIGHT`]
//! requests run at once per connection (beyond, nothing more is read until one is
//! answered), and a client that does not read its answers (a write stuck for the
//! header-read timeout) is cut off.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter, WriteHalf};
use tokio::sync::{mpsc, Semaphore};

use super::auth::{self, Caller, Unheard};
use super::frame::{self, Frame, Kind, ReadError};
use super::handler::PeerHandler;
use super::message::PreVoteRequest;
use crate::raft::Speaker;
use crate::server::TlsConnection;
use crate::state::codec;

/// Requests of one connection handled at once.
pub(super) const MAX_IN_FLIGHT: usize = 64;
/// How long answers still in flight may take once the connection stops reading.
const DRAIN: Duration = Duration::from_secs(5);
/// Answers gathered into one write.
const WRITE_BUFFER: usize = 64 * 1024;

/// An answer on its way out.
struct Answer {
    id: u64,
    kind: Kind,
    payload: Vec<u8>,
}

/// Serve one connection that negotiated the framed protocol.
pub(super) async fn serve<H: PeerHandler>(handler: H, connection: TlsConnection) {
    let TlsConnection {
        stream,
        remote,
        certificate,
        limits,
        mut shutdown,
    } = connection;
    let (mut reader, writer) = tokio::io::split(stream);
    let (answers, outgoing) = mpsc::channel::<Answer>(MAX_IN_FLIGHT);
    let writing = tokio::spawn(write_answers(writer, outgoing, limits.header_read_timeout));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut first = true;
    loop {
        let wait = match first {
            true => limits.header_read_timeout,
            false => limits.idle_timeout,
        };
        let read = tokio::select! {
            read = frame::read(&mut reader, Some(wait), limits.header_read_timeout) => read,
            _ = shutdown.wait_for(|stop| *stop) => break,
            // The writer gave up: the client does not read its answers.
            _ = answers.closed() => break,
        };
        let request = match read {
            Ok(request) => request,
            // Requests still running keep a quiet connection open.
            Err(ReadError::Quiet) if in_flight.available_permits() < MAX_IN_FLIGHT => continue,
            // The rest of the frame was not read: the connection cannot go on.
            Err(e @ (ReadError::TooLarge { id, .. } | ReadError::UnknownKind { id, .. })) => {
                tracing::warn!(%remote, "closed a peer link: {e}");
                let _ = answers
                    .send(answer(id, Kind::Invalid, e.to_string().into_bytes()))
                    .await;
                break;
            }
            Err(e) => {
                tracing::debug!(%remote, first, error = %e, "peer link closed");
                break;
            }
        };
        first = false;
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (handler, answers) = (handler.clone(), answers.clone());
        let certificate = certificate.clone();
        tokio::spawn(async move {
            let reply = respond(&handler, certificate.as_ref(), request).await;
            let _ = answers.send(reply).await;
            drop(permit);
        });
    }
    // The writer ends once every answer in flight has been sent.
    drop(answers);
    if tokio::time::timeout(DRAIN, writing).await.is_err() {
        tracing::debug!(%remote, "gave up on answers in flight on a closing peer link");
    }
}

/// Writes answers as they come, everything ready at once in one flush, until every sender
/// is gone; then closes the TLS session. Gives up when a write does not finish within
/// `stall` (a client that does not read its answers).
async fn write_answers<S: AsyncWrite>(
    writer: WriteHalf<S>,
    mut outgoing: mpsc::Receiver<Answer>,
    stall: Duration,
) {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    while let Some(first) = outgoing.recv().await {
        let batch = async {
            let mut next = Some(first);
            while let Some(a) = next {
                let head = frame::header(a.id, a.kind, a.payload.len());
                writer.write_all(&head).await?;
                writer.write_all(&a.payload).await?;
                next = outgoing.try_recv().ok();
            }
            writer.flush().await
        };
        if !matches!(tokio::time::timeout(stall, batch).await, Ok(Ok(()))) {
            return;
        }
    }
    let _ = tokio::time::timeout(stall, writer.shutdown()).await;
}

fn answer(id: u64, kind: Kind, payload: Vec<u8>) -> Answer {
    Answer { id, kind, payload }
}

/// The answer to one request: checked as the HTTP routes check theirs.
async fn respond<H: PeerHandler>(
    handler: &H,
    certificate: Option<&crate::server::PeerCertificate>,
    request: Frame,
) -> Answer {
    let id = request.id;
    let what = match request.kind {
        Kind::Append => "append",
        Kind::Vote => "vote",
        Kind::PreVote => "pre-vote",
        Kind::Answer | Kind::Refused | Kind::Invalid => {
            return answer(id, Kind::Invalid, b"an answer is not a request".to_vec())
        }
    };
    let caller = match auth::caller(handler, certificate, what) {
        Ok(caller) => caller,
        Err(reason) => return answer(id, Kind::Refused, reason.into_bytes()),
    };
    let payload = &request.payload;
    match request.kind {
        Kind::Append => raft_call(id, caller, payload, |rpc| handler.append(rpc)).await,
        Kind::Vote => raft_call(id, caller, payload, |rpc| handler.vote(rpc)).await,
        _ => match codec::decode::<PreVoteRequest>(payload) {
            Ok(pre_vote) if pre_vote.candidate == caller.0 => answer(
                id,
                Kind::Answer,
                codec::encode(&handler.pre_vote(&pre_vote)),
            ),
            Ok(pre_vote) => refused(id, caller, Some(pre_vote.candidate)),
            Err(e) => answer(id, Kind::Invalid, e.to_string().into_bytes()),
        },
    }
}

/// A Raft message, answered only when it speaks for the node whose certificate carried it.
async fn raft_call<T, R, Fut>(
    id: u64,
    caller: Caller,
    payload: &[u8],
    handle: impl FnOnce(T) -> Fut,
) -> Answer
where
    T: DeserializeOwned + Speaker,
    R: Serialize,
    Fut: Future<Output = R>,
{
    match auth::decode_from_speaker::<T>(caller, payload) {
        Ok(rpc) => answer(id, Kind::Answer, codec::encode(&handle(rpc).await)),
        Err(Unheard::Impersonation(why)) => answer(id, Kind::Refused, why.into_bytes()),
        Err(Unheard::Invalid(why)) => answer(id, Kind::Invalid, why.into_bytes()),
    }
}

fn refused(id: u64, caller: Caller, claimed: Option<crate::raft::NodeId>) -> Answer {
    let why = auth::impersonation(caller, claimed);
    answer(id, Kind::Refused, why.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_no_answers_is_given_up() {
        let (ours, _unread) = tokio::io::duplex(64);
        let (_, writer) = tokio::io::split(ours);
        let (answers, outgoing) = mpsc::channel(8);
        let writing = tokio::spawn(write_answers(writer, outgoing, Duration::from_secs(10)));
        answers
            .send(answer(1, Kind::Answer, vec![0; 1024]))
            .await
            .unwrap();
        // The writer gives up, and with it the queue its answers wait in.
        tokio::time::timeout(Duration::from_secs(60), answers.closed())
            .await
            .expect("the writer still waits on a client that reads nothing");
        writing.await.unwrap();
    }
}
