//! Downloads with progress, cancellation and the Cache API.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Cache, ReadableStreamDefaultReader, RequestInit, Response};

/// The Cache API bucket holding downloaded checkpoint files.
pub const MODEL_CACHE: &str = "vit-lens-models-v1";

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
    #[error("Download cancelled.")]
    Cancelled,
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

/// `url`'s bytes, from `cache` when it holds them, else downloaded (and then stored there).
/// `on_progress(loaded, total)` follows the body as it arrives; `total` is `None` when the
/// server sends no length. `Ok(None)` is a 404 of an `optional` file.
pub async fn fetch_bytes(
    url: &str,
    signal: &AbortSignal,
    cache: Option<&Cache>,
    optional: bool,
    on_progress: &mut dyn FnMut(f64, Option<f64>),
) -> Result<Option<Vec<u8>>, FetchError> {
    if let Some(cache) = cache {
        if let Ok(hit) = JsFuture::from(cache.match_with_str(url)).await {
            if let Ok(response) = hit.dyn_into::<Response>() {
                if let Ok(bytes) = read_all(&response, signal, on_progress).await {
                    return Ok(Some(bytes));
                }
            }
        }
    }
    if signal.aborted() {
        return Err(FetchError::Cancelled);
    }
    let init = RequestInit::new();
    init.set_signal(Some(signal));
    let network = || FetchError::Network {
        url: url.to_string(),
    };
    let window = web_sys::window().ok_or_else(network)?;
    let response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|_| {
            if signal.aborted() {
                FetchError::Cancelled
            } else {
                network()
            }
        })?;
    let response: Response = response.dyn_into().map_err(|_| network())?;
    match response.status() {
        404 if optional => return Ok(None),
        404 => {
            return Err(FetchError::NotFound {
                url: url.to_string(),
            })
        }
        200..=299 => {}
        status => {
            return Err(FetchError::Http {
                url: url.to_string(),
                status,
            })
        }
    }
    let bytes = read_all(&response, signal, on_progress).await?;
    if let Some(cache) = cache {
        let copy = Uint8Array::from(bytes.as_slice());
        if let Ok(stored) = Response::new_with_opt_buffer_source(Some(&copy)) {
            // A full or unavailable cache only costs the next visit a download.
            let _ = JsFuture::from(cache.put_with_str(url, &stored)).await;
        }
    }
    Ok(Some(bytes))
}

async fn read_all(
    response: &Response,
    signal: &AbortSignal,
    on_progress: &mut dyn FnMut(f64, Option<f64>),
) -> Result<Vec<u8>, FetchError> {
    let url = response.url();
    let network = || {
        if signal.aborted() {
            FetchError::Cancelled
        } else {
            FetchError::Network { url: url.clone() }
        }
    };
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0);
    let Some(body) = response.body() else {
        let buffer = JsFuture::from(response.array_buffer().map_err(|_| network())?)
            .await
            .map_err(|_| network())?;
        let bytes = Uint8Array::new(&buffer).to_vec();
        on_progress(bytes.len() as f64, total);
        return Ok(bytes);
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(total.unwrap_or(0.0) as usize);
    on_progress(0.0, total);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|_| network())?;
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
        bytes.resize(start + part.length() as usize, 0);
        part.copy_to(&mut bytes[start..]);
        on_progress(bytes.len() as f64, total);
    }
    if signal.aborted() {
        return Err(FetchError::Cancelled);
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
