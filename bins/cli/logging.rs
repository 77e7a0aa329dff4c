//! Logging of the binaries: the filter from `LOG_LEVEL`, JSON lines or human
//! text on stderr, and the progress bar drawn on a terminal.

use std::io::IsTerminal;

/// The default filter: our own events at info, dependencies at warn, and the TLS
/// verifier's own error line off (our error line says the same, with the hint).
const DEFAULT_FILTER: &str = "warn,snapjob=info,store=info,delete=info,restore=info,copy=info,verify=info,list=info,rustls_platform_verifier=off";

/// The filter from `LOG_LEVEL` (else `RUST_LOG`, else [`DEFAULT_FILTER`]). A
/// single word must be a level (`warning`, `verbose`, `fatal`, `critical` are
/// taken as their nearest level): read as a filter directive, an unknown word would
/// name a log target and silence every line, errors included. Anything with `=`
/// or `,` is a full filter and must parse.
fn log_filter() -> Result<String, String> {
    let (var, raw) = match (std::env::var("LOG_LEVEL"), std::env::var("RUST_LOG")) {
        (Ok(v), _) if !v.trim().is_empty() => ("LOG_LEVEL", v),
        (_, Ok(v)) if !v.trim().is_empty() => ("RUST_LOG", v),
        _ => return Ok(DEFAULT_FILTER.into()),
    };
    let word = raw.trim().to_ascii_lowercase();
    if !word.contains(['=', ',']) {
        let level = match word.as_str() {
            "trace" | "debug" | "info" | "warn" | "error" | "off" => word.as_str(),
            "warning" => "warn",
            "verbose" => "debug",
            "fatal" | "critical" | "err" => "error",
            _ => {
                return Err(format!(
                    "{var}={raw:?} is not a log level (use error, warn, info, debug or trace)"
                ));
            }
        };
        return Ok(level.to_string());
    }
    tracing_subscriber::EnvFilter::try_new(&raw)
        .map(|_| raw.clone())
        .map_err(|e| format!("{var}={raw:?} is not a log filter: {e}"))
}

/// Logs to stderr: human on a TTY, JSON lines otherwise (LOG_FORMAT=json|human
/// overrides); level from [`log_filter`]. A bad level is returned (the run then
/// fails with it) after logging was set up with the default filter.
pub(super) fn init_logging() -> Result<(), String> {
    let (filter, bad) = match log_filter() {
        Ok(f) => (f, None),
        Err(e) => (DEFAULT_FILTER.to_string(), Some(e)),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("human") | Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let tty = std::io::stderr().is_terminal();
    if json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init();
    } else if tty {
        // On a terminal, progress is one bar redrawn in place; log lines clear it first.
        use tracing_subscriber::prelude::*;
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(|| {
                clear_bar();
                std::io::stderr()
            })
            .with_ansi(true)
            .with_target(false)
            .compact()
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                !snapjob::base::progress::is_progress(m)
            }));
        tracing_subscriber::registry()
            .with(filter)
            .with(lines)
            .with(ProgressBar)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(false)
            .compact()
            .init();
    }
    bad.map_or(Ok(()), Err)
}

/// Set while a progress bar is drawn on the terminal, so the next log line clears it.
static BAR_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Clears a drawn progress bar from the terminal line.
pub(super) fn clear_bar() {
    use std::io::Write;
    if BAR_SHOWN.swap(false, std::sync::atomic::Ordering::SeqCst) {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}

/// Draws the library's progress events ([`snapjob::base::progress::PROGRESS_TARGET`]) as one bar
/// line on a terminal, redrawn in place, instead of a log line each time.
struct ProgressBar;

#[derive(Default)]
struct BarFields {
    what: String,
    bytes: u64,
    total: Option<u64>,
    rate: String,
    eta: Option<u64>,
}

impl tracing::field::Visit for BarFields {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "bytes" => self.bytes = value,
            "total" => self.total = Some(value),
            "eta_s" => self.eta = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.what = format!("{value:?}"),
            "mib_per_s" => self.rate = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ProgressBar {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        use std::io::Write;
        if !snapjob::base::progress::is_progress(event.metadata()) {
            return;
        }
        let mut f = BarFields::default();
        event.record(&mut f);
        let mib = |b: u64| b as f64 / 1048576.0;
        let line = match f.total.filter(|t| *t > 0) {
            Some(total) => {
                let pct = (f.bytes.min(total) * 100 / total) as usize;
                let filled = pct * 24 / 100;
                format!(
                    "{} [{}{}] {pct:>3}% {:.1}/{:.1} MiB {} MiB/s ETA {}s",
                    f.what,
                    "#".repeat(filled),
                    "-".repeat(24 - filled),
                    mib(f.bytes),
                    mib(total),
                    f.rate,
                    f.eta.unwrap_or(0)
                )
            }
            None => format!("{} {:.1} MiB {} MiB/s", f.what, mib(f.bytes), f.rate),
        };
        let _ = write!(std::io::stderr(), "\r\x1b[K{line}");
        BAR_SHOWN.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
