use std::time::Instant;
use vit_lens::checkpoint::{read_safetensors, Checkpoint, CheckpointFiles};
use vit_lens::gpu::{block_on, GpuContext, GpuModel};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or("/tmp/fullsize/deit_tiny_hf".into());
    let read = |f: &str| std::fs::read(format!("{dir}/{f}")).unwrap();
    let (c, p, w) = (
        read("config.json"),
        read("preprocessor_config.json"),
        read("model.safetensors"),
    );
    let ck = Checkpoint::from_bytes(CheckpointFiles {
        config_json: &c,
        preprocessor_config_json: Some(&p),
        safetensors: &w,
    })
    .unwrap();
    let reference = read_safetensors(&read("reference.safetensors"))
        .unwrap()
        .tensors;
    let px = &reference["pixel_values"];
    println!("reference pixel shape {:?}", px.shape);
    let t = Instant::now();
    let ctx = block_on(GpuContext::new()).unwrap();
    println!(
        "context (device + kernel compile): {:.1} ms  {}",
        t.elapsed().as_secs_f64() * 1e3,
        ctx.adapter_info()
    );
    let t = Instant::now();
    let model = block_on(GpuModel::with_context(&ctx, &ck)).unwrap();
    println!("upload: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let one = &px.data[..3 * 224 * 224];
    let logits = &reference["logits"];
    let classes = logits.shape[1];
    for batch in [1usize, 8] {
        let pixels: Vec<f32> = (0..batch)
            .flat_map(|i| {
                if i % 2 == 0 {
                    one.to_vec()
                } else {
                    px.data[3 * 224 * 224..2 * 3 * 224 * 224].to_vec()
                }
            })
            .collect();
        let t = Instant::now();
        let out = block_on(model.infer(&pixels, batch, 224, 224)).unwrap();
        let first = t.elapsed().as_secs_f64() * 1e3;
        let d: f32 = out.logits[..classes]
            .iter()
            .zip(&logits.data[..classes])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let mut times = vec![];
        let mut last = out;
        for _ in 0..5 {
            let t = Instant::now();
            last = block_on(model.infer(&pixels, batch, 224, 224)).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("batch {batch}: first {first:.1} ms, median {:.1} ms ({:.1} ms/image), min {:.1}; |logits - torch| {d:.2e}", times[2], times[2] / batch as f64, times[0]);
        if let Some(k) = &last.kernel_ms {
            let total: f64 = k.iter().map(|(_, ms)| ms).sum();
            println!(
                "  kernels: {}  (sum {total:.1} ms)",
                k.iter()
                    .map(|(n, ms)| format!("{n} {ms:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}
