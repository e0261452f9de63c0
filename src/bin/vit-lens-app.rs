//! The web page: Trunk builds this for wasm32 (see index.html).

#[cfg(target_arch = "wasm32")]
fn main() {
    vit_lens::app::mount();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "vit-lens-app is the web page; build and serve it with `trunk serve` (see README.md)."
    );
    std::process::exit(2);
}
