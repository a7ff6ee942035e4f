//! The framed protocol that carries Raft's frequent messages (appends, votes, pre-votes) on
//! the peer port: after a mutual-TLS handshake that negotiated ALPN [`ALPN`], each side
//! sends frames `[payload length: u32][request id: u64][kind: u8][payload]` (big-endian),
//! the payload a codec value (format byte, then bincode). Many requests are in flight on
//! one connection; an answer carries its request's id and comes whenever it is ready.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

pub(super) use crate::tls::PEER_LINK_ALPN as ALPN;

pub(super) const HEADER_LEN: usize = 13;
/// The largest payload either side reads: appends can carry many entries, but a runaway
/// peer must not make us allocate without bound. Past it, the connection closes.
pub(super) const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// Buffers grow as a payload's bytes arrive, not to the length its header claims.
const READ_CHUNK: usize = 64 * 1024;

/// What a frame is: a request (client to server) or the kind of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Append,
    Vote,
    PreVote,
    /// The handler's answer, a codec value.
    Answer,
    /// The request was refused (its certificate, or whom it speaks for): a UTF-8 reason.
    Refused,
    /// The request could not be read (or is of a kind this server does not know): a
    /// UTF-8 reason.
    Invalid,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Append => 1,
            Kind::Vote => 2,
            Kind::PreVote => 3,
            Kind::Answer => 0x80,
            Kind::Refused => 0x81,
            Kind::Invalid => 0x82,
        }
    }

    fn of(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Append,
            2 => Kind::Vote,
            3 => Kind::PreVote,
            0x80 => Kind::Answer,
            0x81 => Kind::Refused,
            0x82 => Kind::Invalid,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub(super) struct Frame {
    pub id: u64,
    pub kind: Kind,
    pub payload: Vec<u8>,
}

/// A frame's header bytes.
pub(super) fn header(id: u64, kind: Kind, payload_len: usize) -> [u8; HEADER_LEN] {
    let len = u32::try_from(payload_len).expect("payloads are bounded by MAX_PAYLOAD");
    let mut out = [0u8; HEADER_LEN];
    out[..4].copy_from_slice(&len.to_be_bytes());
    out[4..12].copy_from_slice(&id.to_be_bytes());
    out[12] = kind.byte();
    out
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// Nothing arrived within the wait; no byte of a frame was read.
    #[error("no frame arrived in time")]
    Quiet,
    /// The other side closed the connection between frames.
    #[error("connection closed")]
    Closed,
    #[error("a frame began but its bytes stopped coming")]
    Stalled,
    #[error("frame {id} of kind {kind:#04x}: unknown kind")]
    UnknownKind { id: u64, kind: u8 },
    #[error("frame {id} of {len} bytes is over the limit of {MAX_PAYLOAD} bytes")]
    TooLarge { id: u64, len: usize },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads the next frame: its first byte must come within `wait` (none: no limit), and once
/// it began every read must bring bytes within `stall`. On [`ReadError::Quiet`] nothing
/// was consumed and the caller may wait again.
pub(super) async fn read<R: AsyncRead + Unpin>(
    reader: &mut R,
    wait: Option<Duration>,
    stall: Duration,
) -> Result<Frame, ReadError> {
    let mut head = [0u8; HEADER_LEN];
    let first = match wait {
        Some(wait) => tokio::time::timeout(wait, reader.read(&mut head))
            .await
            .map_err(|_| ReadError::Quiet)??,
        None => reader.read(&mut head).await?,
    };
    if first == 0 {
        return Err(ReadError::Closed);
    }
    let mut filled = first;
    while filled < HEADER_LEN {
        filled += read_some(reader, &mut head[filled..], stall).await?;
    }
    let len = u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let id = u64::from_be_bytes(head[4..12].try_into().expect("8 bytes"));
    let kind = Kind::of(head[12]).ok_or(ReadError::UnknownKind { id, kind: head[12] })?;
    if len > MAX_PAYLOAD {
        return Err(ReadError::TooLarge { id, len });
    }
    let mut payload = Vec::with_capacity(len.min(READ_CHUNK));
    while payload.len() < len {
        let start = payload.len();
        let want = (len - start).min(READ_CHUNK);
        payload.resize(start + want, 0);
        let got = read_some(reader, &mut payload[start..], stall).await?;
        payload.truncate(start + got);
    }
    Ok(Frame { id, kind, payload })
}

/// One read into `buf` of at least a byte, within `stall`.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    stall: Duration,
) -> Result<usize, ReadError> {
    match tokio::time::timeout(stall, reader.read(buf)).await {
        Err(_) => Err(ReadError::Stalled),
        Ok(Ok(0)) => Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_frame_reads_back_as_written() {
        let (mut a, mut b) = tokio::io::duplex(16);
        let writer = tokio::spawn(async move {
            let payload = vec![7u8; 100];
            a.write_all(&header(42, Kind::Vote, payload.len()))
                .await
                .unwrap();
            a.write_all(&payload).await.unwrap();
            a
        });
        let frame = read(&mut b, None, Duration::from_secs(5)).await.unwrap();
        assert_eq!((frame.id, frame.kind), (42, Kind::Vote));
        assert_eq!(frame.payload, vec![7u8; 100]);
        drop(writer.await.unwrap());
        assert!(matches!(
            read(&mut b, None, Duration::from_secs(5)).await,
            Err(ReadError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_header_claiming_too_much_is_refused_before_any_payload_is_read() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut head = header(9, Kind::Append, 0);
        head[..4].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        a.write_all(&head).await.unwrap();
        match read(&mut b, None, Duration::from_secs(5)).await {
            Err(ReadError::TooLarge { id: 9, len }) => assert_eq!(len, MAX_PAYLOAD + 1),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_and_a_stalled_frame_time_out() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let wait = Some(Duration::from_secs(1));
        let stall = Duration::from_secs(2);
        assert!(matches!(
            read(&mut b, wait, stall).await,
            Err(ReadError::Quiet)
        ));
        a.write_all(&header(1, Kind::Append, 10)[..5])
            .await
            .unwrap();
        assert!(matches!(
            read(&mut b, wait, stall).await,
            Err(ReadError::Stalled)
        ));
    }
}
