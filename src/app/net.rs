//! Downloads with progress, cancellation and the Cache API.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Cache, ReadableStreamDefaultReader, RequestInit, Response};

use super::hub::format_bytes;

/// The Cache API bucket holding downloaded checkpoint files.
pub const MODEL_CACHE: &str = "vit-lens-models-v1";

/// Largest `model.safetensors` the page downloads (the browser holds it in memory twice).
pub const MAX_WEIGHTS_BYTES: f64 = 1024.0 * 1024.0 * 1024.0;
/// Largest JSON file (`config.json`, `preprocessor_config.json`, the sample index).
pub const MAX_JSON_BYTES: f64 = 1024.0 * 1024.0;

/// Most a download reserves before its bytes arrive.
const PREALLOCATE_MAX_BYTES: f64 = 64.0 * 1024.0 * 1024.0;

/// Why a download failed, in words that say what to do.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FetchError {
    #[error("{url} does not exist (HTTP 404). Check the repo id and revision; the repo must hold config.json and model.safetensors.")]
    NotFound { url: String },
    #[error(
        "The server answered HTTP {status} for {url}. Try again later, or pick another model."
    )]
    Http { url: String, status: u16 },
    #[error("Could not download {url}: the network is unreachable, or the server does not allow cross-origin (CORS) requests. Models downloaded before still load from the cache.")]
    Network { url: String },
    #[error("{url} is {size}, more than the {limit} this page accepts for that file. Pick a smaller model.")]
    TooLarge {
        url: String,
        /// In words: "1.2 GB" or "over 1.1 GB".
        size: String,
        limit: String,
    },
    #[error("The download of {url} broke off after {got} of {expected}. Try again.")]
    Truncated {
        url: String,
        got: String,
        expected: String,
    },
    #[error("Download cancelled.")]
    Cancelled,
}

/// How a download uses the model cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// Neither read nor written.
    None,
    /// The file never changes (a commit): a cached copy is used as is.
    Immutable,
    /// The file may change (a branch, a plain URL): a cached copy is revalidated with the
    /// server (`If-None-Match` / `If-Modified-Since`) and used on `304` or with no network.
    Revalidate,
}

/// What the server said identifies a file's version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    fn of(response: &Response) -> Self {
        let get = |name: &str| response.headers().get(name).ok().flatten();
        Self {
            etag: get("etag"),
            last_modified: get("last-modified"),
        }
    }

    fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// A downloaded file: its bytes, and, when they came from the network and should be cached
/// once the model proves usable, what identifies this version.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub to_cache: Option<Validators>,
}

/// A file to store in the model cache.
#[derive(Clone, Debug)]
pub struct CacheEntry {
    pub url: String,
    pub bytes: std::sync::Arc<Vec<u8>>,
    pub validators: Validators,
}

/// The model cache, when the browser offers the Cache API here (secure contexts only).
pub async fn open_cache() -> Option<Cache> {
    let caches = web_sys::window()?.caches().ok()?;
    JsFuture::from(caches.open(MODEL_CACHE))
        .await
        .ok()?
        .dyn_into::<Cache>()
        .ok()
}

/// Deletes every cached model file; returns how many there were.
pub async fn clear_cache() -> Result<u32, String> {
    let caches = web_sys::window()
        .ok_or_else(|| "This page has no window.".to_string())?
        .caches()
        .map_err(|_| "This browser offers no Cache API here.".to_string())?;
    let mut count = 0;
    if let Some(cache) = open_cache().await {
        if let Ok(keys) = JsFuture::from(cache.keys()).await {
            count = js_sys::Array::from(&keys).length();
        }
    }
    JsFuture::from(caches.delete(MODEL_CACHE))
        .await
        .map_err(|e| format!("Could not clear the cache: {e:?}"))?;
    Ok(count)
}

/// Stores files of a model the worker accepted; a full or unavailable cache only costs the
/// next visit a download.
pub async fn store_in_cache(entries: Vec<CacheEntry>) {
    let Some(cache) = open_cache().await else {
        return;
    };
    for entry in entries {
        let copy = Uint8Array::from(entry.bytes.as_slice());
        let Ok(stored) = Response::new_with_opt_buffer_source(Some(&copy)) else {
            continue;
        };
        let headers = stored.headers();
        let _ = headers.set("content-length", &entry.bytes.len().to_string());
        if let Some(etag) = &entry.validators.etag {
            let _ = headers.set("etag", etag);
        }
        if let Some(modified) = &entry.validators.last_modified {
            let _ = headers.set("last-modified", modified);
        }
        let _ = JsFuture::from(cache.put_with_str(&entry.url, &stored)).await;
    }
}

/// `url`'s bytes (at most `max_bytes`), from the model cache or downloaded, as `cache_use`
/// says; downloaded files are not cached here (see [`store_in_cache`]).
/// `on_progress(loaded, total)` follows the body as it arrives; `total` is `None` when the
/// server sends no length. `Ok(None)` is a 404 of an `optional` file.
pub async fn fetch_bytes(
    url: &str,
    signal: &AbortSignal,
    cache_use: CacheUse,
    optional: bool,
    max_bytes: f64,
    on_progress: &mut dyn FnMut(f64, Option<f64>),
) -> Result<Option<Fetched>, FetchError> {
    let cached = match cache_use {
        CacheUse::None => None,
        _ => cached_response(url).await,
    };
    let validators = cached.as_ref().map(Validators::of).unwrap_or_default();
    if let Some(hit) = &cached {
        if cache_use == CacheUse::Immutable || validators.is_empty() {
            if let Ok(bytes) = read_all(hit, url, signal, max_bytes, on_progress).await {
                return Ok(Some(Fetched {
                    bytes,
                    to_cache: None,
                }));
            }
        }
    }
    if signal.aborted() {
        return Err(FetchError::Cancelled);
    }
    let init = RequestInit::new();
    init.set_signal(Some(signal));
    if cached.is_some() {
        let headers = web_sys::Headers::new().map_err(|_| network_error(url))?;
        if let Some(etag) = &validators.etag {
            let _ = headers.set("if-none-match", etag);
        }
        if let Some(modified) = &validators.last_modified {
            let _ = headers.set("if-modified-since", modified);
        }
        init.set_headers(&headers);
        // The answer must reach the page as is (a 304 included), not through the HTTP cache.
        let _ = Reflect::set(&init, &"cache".into(), &"no-store".into());
    }
    let response = match send(url, &init, signal).await {
        Ok(response) => response,
        Err(FetchError::Network { .. }) if cached.is_some() => {
            // Offline (or the host is down): the cached copy is the best there is.
            return from_cache(cached, url, signal, max_bytes, on_progress).await;
        }
        Err(e) => return Err(e),
    };
    match response.status() {
        304 if cached.is_some() => {
            return from_cache(cached, url, signal, max_bytes, on_progress).await
        }
        200..=299 => {}
        404 if optional && cached.is_none() => return Ok(None),
        404 if cached.is_none() => {
            return Err(FetchError::NotFound {
                url: url.to_string(),
            })
        }
        status if cached.is_none() => {
            return Err(FetchError::Http {
                url: url.to_string(),
                status,
            })
        }
        // The server failed to say; the cached copy was good when it was stored.
        _ => return from_cache(cached, url, signal, max_bytes, on_progress).await,
    }
    let bytes = read_all(&response, url, signal, max_bytes, on_progress).await?;
    let to_cache = (cache_use != CacheUse::None).then(|| Validators::of(&response));
    Ok(Some(Fetched { bytes, to_cache }))
}

fn network_error(url: &str) -> FetchError {
    FetchError::Network {
        url: url.to_string(),
    }
}

async fn send(url: &str, init: &RequestInit, signal: &AbortSignal) -> Result<Response, FetchError> {
    let window = web_sys::window().ok_or_else(|| network_error(url))?;
    let response = JsFuture::from(window.fetch_with_str_and_init(url, init))
        .await
        .map_err(|_| {
            if signal.aborted() {
                FetchError::Cancelled
            } else {
                network_error(url)
            }
        })?;
    response.dyn_into().map_err(|_| network_error(url))
}

async fn cached_response(url: &str) -> Option<Response> {
    let cache = open_cache().await?;
    JsFuture::from(cache.match_with_str(url))
        .await
        .ok()?
        .dyn_into::<Response>()
        .ok()
}

async fn from_cache(
    cached: Option<Response>,
    url: &str,
    signal: &AbortSignal,
    max_bytes: f64,
    on_progress: &mut dyn FnMut(f64, Option<f64>),
) -> Result<Option<Fetched>, FetchError> {
    let cached = cached.ok_or_else(|| network_error(url))?;
    let bytes = read_all(&cached, url, signal, max_bytes, on_progress).await?;
    Ok(Some(Fetched {
        bytes,
        to_cache: None,
    }))
}

/// The whole body of `response`, refused as soon as it is known to exceed `max_bytes`.
async fn read_all(
    response: &Response,
    url: &str,
    signal: &AbortSignal,
    max_bytes: f64,
    on_progress: &mut dyn FnMut(f64, Option<f64>),
) -> Result<Vec<u8>, FetchError> {
    let network = || {
        if signal.aborted() {
            FetchError::Cancelled
        } else {
            network_error(url)
        }
    };
    let too_large = |size: String| FetchError::TooLarge {
        url: url.to_string(),
        size,
        limit: format_bytes(max_bytes),
    };
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0);
    if let Some(total) = total.filter(|&t| t > max_bytes) {
        if let Some(body) = response.body() {
            let _ = body.cancel();
        }
        return Err(too_large(format_bytes(total)));
    }
    let Some(body) = response.body() else {
        let buffer = JsFuture::from(response.array_buffer().map_err(|_| network())?)
            .await
            .map_err(|_| network())?;
        let bytes = Uint8Array::new(&buffer);
        if f64::from(bytes.length()) > max_bytes {
            return Err(too_large(format_bytes(f64::from(bytes.length()))));
        }
        let bytes = bytes.to_vec();
        on_progress(bytes.len() as f64, total);
        return Ok(bytes);
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    // Reserve what the server announced, up to a bound: a server that claims a length and
    // sends less must not make the page hold memory it never fills.
    let mut bytes = Vec::with_capacity(total.unwrap_or(0.0).min(PREALLOCATE_MAX_BYTES) as usize);
    on_progress(0.0, total);
    loop {
        let chunk = match JsFuture::from(reader.read()).await {
            Ok(chunk) => chunk,
            Err(_) if signal.aborted() => return Err(FetchError::Cancelled),
            Err(_) => {
                return Err(match total {
                    Some(total) if !bytes.is_empty() => FetchError::Truncated {
                        url: url.to_string(),
                        got: format_bytes(bytes.len() as f64),
                        expected: format_bytes(total),
                    },
                    _ => network(),
                })
            }
        };
        let done = Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = Reflect::get(&chunk, &JsValue::from_str("value")).map_err(|_| network())?;
        let part: Uint8Array = value.dyn_into().map_err(|_| network())?;
        let start = bytes.len();
        let end = start + part.length() as usize;
        if end as f64 > max_bytes {
            let _ = reader.cancel();
            return Err(too_large(format!("over {}", format_bytes(max_bytes))));
        }
        bytes.resize(end, 0);
        part.copy_to(&mut bytes[start..]);
        on_progress(bytes.len() as f64, total);
    }
    if signal.aborted() {
        return Err(FetchError::Cancelled);
    }
    if let Some(total) = total.filter(|&t| (bytes.len() as f64) < t) {
        return Err(FetchError::Truncated {
            url: url.to_string(),
            got: format_bytes(bytes.len() as f64),
            expected: format_bytes(total),
        });
    }
    Ok(bytes)
}

/// The bytes of a `Blob` (or `File`).
pub async fn blob_bytes(blob: &web_sys::Blob) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(blob.array_buffer())
        .await
        .map_err(|e| format!("could not read the file: {e:?}"))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}
