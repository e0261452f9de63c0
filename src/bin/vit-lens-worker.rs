//! The web app's inference worker: Trunk builds this for wasm32 as a Web Worker.

#[cfg(target_arch = "wasm32")]
fn main() {
    vit_lens::app::run_worker();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("vit-lens-worker runs inside the web page's Web Worker; see README.md.");
    std::process::exit(2);
}
