//! Logs: `tracing`, text by default or one JSON object per line, every line with the node id.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
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
        match node_id() {
            Some(id) => write!(writer, "[node {id}] ")?,
            None => write!(writer, "[node -] ")?,
        }
        self.0.format_event(ctx, writer, event)
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
        let mut fields = JsonFields::default();
        event.record(&mut fields);
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
