//! The sample images served with the page, listed in `assets/samples/index.json`.

use std::sync::Arc;

use web_sys::AbortController;

use super::Loader;
use crate::app::net::{fetch_bytes, CacheUse, FetchError, MAX_JSON_BYTES};

/// Where the samples and their index are, relative to the page.
pub const SAMPLES_DIR: &str = "assets/samples";

/// Largest sample image downloaded (the samples served with the page are a few kB).
const MAX_SAMPLE_BYTES: f64 = 64.0 * 1024.0 * 1024.0;

/// One sample image.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Sample {
    /// Its file name in [`SAMPLES_DIR`].
    pub file: String,
    /// What it shows; also the name the page gives the image.
    pub label: String,
}

/// `assets/samples/index.json`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct SampleIndex {
    pub samples: Vec<Sample>,
}

/// Why the sample list could not be shown.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SampleIndexError {
    #[error(
        "{url} is missing (HTTP 404): this copy of the page was built without its sample images"
    )]
    Missing { url: String },
    #[error("the server answered HTTP {status} for {url}; reload the page to try again")]
    Http { url: String, status: u16 },
    #[error("{url} could not be downloaded: the page's server is unreachable and it is not in the offline copy; reload the page to try again")]
    Unreachable { url: String },
    #[error("{url} is not a sample index ({reason}); the page's files may be damaged: reload the page, or rebuild the app")]
    Malformed { url: String, reason: String },
}

impl SampleIndexError {
    fn of(url: &str, error: FetchError) -> Self {
        let url = url.to_string();
        match error {
            FetchError::NotFound { .. } => Self::Missing { url },
            FetchError::Http { status, .. } => Self::Http { url, status },
            FetchError::Network { .. }
            | FetchError::Cancelled
            | FetchError::TooLarge { .. }
            | FetchError::Truncated { .. } => Self::Unreachable { url },
        }
    }
}

/// Downloads and reads the sample index.
pub async fn sample_index() -> Result<SampleIndex, SampleIndexError> {
    let url = format!("{SAMPLES_DIR}/index.json");
    let unreachable = || SampleIndexError::Unreachable { url: url.clone() };
    let ctrl = AbortController::new().map_err(|_| unreachable())?;
    let bytes = fetch_bytes(
        &url,
        &ctrl.signal(),
        CacheUse::None,
        false,
        MAX_JSON_BYTES,
        &mut |_, _| {},
    )
    .await
    .map_err(|e| SampleIndexError::of(&url, e))?
    .ok_or_else(unreachable)?
    .bytes;
    serde_json::from_slice(&bytes).map_err(|e| SampleIndexError::Malformed {
        url: url.clone(),
        reason: e.to_string(),
    })
}

impl Loader {
    /// Downloads a sample (clicked at `started`) and classifies it.
    pub fn open_sample(&self, sample: Sample, started: f64) {
        let client = self.client;
        let notices = self.state.notices;
        leptos::task::spawn_local(async move {
            let Ok(ctrl) = AbortController::new() else {
                return;
            };
            let url = format!("{SAMPLES_DIR}/{}", sample.file);
            let fetched = fetch_bytes(
                &url,
                &ctrl.signal(),
                CacheUse::None,
                false,
                MAX_SAMPLE_BYTES,
                &mut |_, _| {},
            )
            .await;
            match fetched {
                Ok(Some(f)) => client.classify(sample.label, Arc::new(f.bytes), started),
                Ok(None) => {}
                Err(e) => notices.fail(format!("Could not open the sample: {e}")),
            }
        });
    }
}
