//! Prometheus metrics: one recorder per process behind the `metrics` facade, rendered in
//! Prometheus' text format for `GET /metrics` (served by the API). Each area records its own
//! figures with the facade's macros under the names in [`names`].
//!
//! Integration tests and real nodes run one node per process; unit tests may run several in
//! one, and then share the recorder (a second install is no error).

pub mod names;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use self::names::{Kind, FAMILIES};

/// Histogram buckets, in seconds: from a fast fsync to a slow model load.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0,
];

/// Histograms are drained into their buckets at least this often, scraped or not.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the recorder, once per process; later calls return the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("the buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            // Someone else's recorder (a test harness): ours then renders only descriptions.
            tracing::warn!("a metrics recorder was installed already; /metrics stays empty");
        }
        describe();
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("helix-metrics".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        handle
    })
}

/// Everything recorded so far, in Prometheus' text format.
pub fn render() -> String {
    install().render()
}

/// HELP for every family, and a zero for each series known in advance (no labels, or one
/// label with listed values), so a dashboard shows 0 rather than nothing before the first
/// event.
fn describe() {
    for family in FAMILIES {
        let zeros: Vec<Vec<::metrics::Label>> = match (family.labels, family.values) {
            ([], _) => vec![Vec::new()],
            ([label], values) => values
                .iter()
                .map(|v| vec![::metrics::Label::new(*label, *v)])
                .collect(),
            _ => Vec::new(),
        };
        match family.kind {
            Kind::Counter => {
                ::metrics::describe_counter!(family.name, family.help);
                for labels in zeros {
                    ::metrics::counter!(family.name, labels).increment(0);
                }
            }
            Kind::Gauge => {
                ::metrics::describe_gauge!(family.name, family.help);
                for labels in zeros {
                    ::metrics::gauge!(family.name, labels).set(0.0);
                }
            }
            Kind::Histogram => ::metrics::describe_histogram!(family.name, family.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::names::{self, Kind, FAMILIES};

    /// What `/metrics` answers parses whole as Prometheus' text format, with each family's
    /// HELP and TYPE, and a route template survives as a label value.
    #[test]
    fn the_rendering_is_prometheus_text_with_help_for_every_family() {
        super::install();
        ::metrics::histogram!(names::RAFT_LOG_FLUSH).record(0.002);
        let route = "/api/v1/helix-models/{*id}";
        ::metrics::counter!(names::API_REQUESTS,
            "route" => route, "method" => "GET", "status" => "200")
        .increment(1);
        let text = super::render();
        let parsed = openmetrics_parser::prometheus::parse_prometheus(&text)
            .unwrap_or_else(|e| panic!("{e:?}:\n{text}"));
        let shown_at_start = FAMILIES
            .iter()
            .filter(|f| f.kind != Kind::Histogram && (f.labels.is_empty() || !f.values.is_empty()));
        for family in
            shown_at_start.chain(FAMILIES.iter().filter(|f| f.name == names::RAFT_LOG_FLUSH))
        {
            let got = parsed
                .families
                .get(family.name)
                .unwrap_or_else(|| panic!("{} missing:\n{text}", family.name));
            assert_eq!(got.help, family.help);
        }
        let requests = &parsed.families[names::API_REQUESTS];
        let routes: Vec<String> = requests
            .iter_samples()
            .filter_map(|s| {
                let labels = s.get_labelset().ok()?;
                labels.get_label_value("route").map(str::to_string)
            })
            .collect();
        assert!(routes.iter().any(|r| r == route), "{routes:?}");
    }
}
