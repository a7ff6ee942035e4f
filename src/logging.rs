//! Logs: `tracing`, text by default or one JSON object per line, every line with the node id.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The node id stamped on every line; 0 until the node knows it (a joining node learns it
/// from the leader).
static NODE_ID: AtomicU64 = AtomicU64::new(0);

pub fn set_node_id(id: u64) {
    NODE_ID.store(id, Ordering::Relaxed);
}

fn node_id() -> Option<u64> {
    match NODE_ID.load(Ordering::Relaxed) {
        0 => None,
        id => Some(id),
    }
}

/// What is logged unless `RUST_LOG` says otherwise. openraft warns (and errs) about routine
/// events: every failed heartbeat to a member that is restarting, every message that raced a
/// vote or a membership change. Its replication targets are off (helix's own network logs a
/// member that stops answering, once, and once when it answers again) and the rest of
/// openraft shows only errors.
const DEFAULT_FILTER: &str = "info,openraft=error,openraft::replication=off,\
    openraft::engine::handler::replication_handler=off,sled=warn,hyper=warn";

/// openraft repeats its warnings and errors at every retry: while a member is cut off, about
/// one per heartbeat and member. Each of its call sites prints one line per interval; the
/// next line after it says how many were held back (`suppressed=N`).
const REPEAT_INTERVAL: Duration = Duration::from_secs(10);

static REPEATS: LazyLock<Repeats<Identifier>> = LazyLock::new(|| Repeats::new(REPEAT_INTERVAL));

/// Whether to print `meta`'s event now: `Some(n)` with the number held back since the last
/// one printed, `None` to hold it back.
fn admit(meta: &Metadata<'_>) -> Option<u64> {
    if !meta.target().starts_with("openraft") || *meta.level() > Level::WARN {
        return Some(0);
    }
    REPEATS.admit(meta.callsite(), Instant::now())
}

/// One line per key per interval, counting the rest.
struct Repeats<K> {
    every: Duration,
    /// Per key: when its last line was printed, and how many were held back since.
    seen: Mutex<HashMap<K, (Instant, u64)>>,
}

impl<K: Hash + Eq> Repeats<K> {
    fn new(every: Duration) -> Self {
        Repeats {
            every,
            seen: Mutex::default(),
        }
    }

    fn admit(&self, key: K, now: Instant) -> Option<u64> {
        // A panic elsewhere while holding the lock leaves the counts usable.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((printed, held_back)) = seen.get_mut(&key) else {
            seen.insert(key, (now, 0));
            return Some(0);
        };
        if now.duration_since(*printed) < self.every {
            *held_back += 1;
            return None;
        }
        *printed = now;
        Some(std::mem::take(held_back))
    }
}

/// Install the global subscriber, writing to stderr.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .event_format(TextWithNodeId(Format::default().with_ansi(false)))
            .try_init(),
        LogFormat::Json => builder.event_format(JsonLine).try_init(),
    };
}

struct TextWithNodeId<F>(F);

impl<S, N, F> FormatEvent<S, N> for TextWithNodeId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some(suppressed) = admit(event.metadata()) else {
            return Ok(());
        };
        match node_id() {
            Some(id) => write!(writer, "[node {id}] ")?,
            None => write!(writer, "[node -] ")?,
        }
        if suppressed == 0 {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writeln!(writer, "{} suppressed={suppressed}", line.trim_end())
    }
}

struct JsonLine;

#[derive(Default)]
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some(suppressed) = admit(event.metadata()) else {
            return Ok(());
        };
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        if suppressed > 0 {
            fields.0.insert("suppressed".into(), suppressed.into());
        }
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            crate::time::rfc3339(crate::time::now_ms()).into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        line.insert("node_id".into(), node_id().into());
        if let Some(message) = fields.0.remove("message") {
            line.insert("message".into(), message);
        }
        line.insert("fields".into(), fields.0.into());
        let mut out = serde_json::Value::Object(line).to_string();
        out.push('\n');
        writer.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_prints_once_per_interval_with_the_count_held_back() {
        let repeats = Repeats::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(repeats.admit("a", at(0)), Some(0));
        for ms in (25..10_000).step_by(25) {
            assert_eq!(repeats.admit("a", at(ms)), None);
        }
        // Another call site is counted apart.
        assert_eq!(repeats.admit("b", at(500)), Some(0));
        assert_eq!(repeats.admit("a", at(10_000)), Some(399));
        assert_eq!(repeats.admit("a", at(10_050)), None);
        assert_eq!(repeats.admit("a", at(30_000)), Some(1));
    }
}
