//! Where a model comes from: the embedded default, a Hugging Face hub repo, a plain URL, or
//! files the user picked. Pure string handling, tested natively.

/// The public hub; the page's `?hub=` query parameter replaces it (tests point it at a
/// local server that answers `{hub}/{repo}/resolve/{revision}/{file}`).
pub const DEFAULT_HUB: &str = "https://huggingface.co";

/// Files a checkpoint directory holds; only the preprocessor config is optional.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";

/// The embedded default model, served beside the page.
pub const EMBEDDED_BASE: &str = "assets/model";

/// A hub model the picker offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub repo: &'static str,
    /// What the picker shows.
    pub title: &'static str,
}

/// ViT-Ti and DeiT-Ti checkpoints on the hub, in both layouts.
pub const PRESETS: [Preset; 5] = [
    Preset {
        repo: "facebook/deit-tiny-patch16-224",
        title: "DeiT-Ti (facebook, transformers)",
    },
    Preset {
        repo: "facebook/deit-tiny-distilled-patch16-224",
        title: "DeiT-Ti distilled (facebook, transformers)",
    },
    Preset {
        repo: "WinKawaks/vit-tiny-patch16-224",
        title: "ViT-Ti (WinKawaks, transformers)",
    },
    Preset {
        repo: "timm/deit_tiny_patch16_224.fb_in1k",
        title: "DeiT-Ti (timm)",
    },
    Preset {
        repo: "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k",
        title: "ViT-Ti AugReg (timm)",
    },
];

/// A model to download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// `{hub}/{repo}/resolve/{revision}/{file}`.
    Hub {
        hub: String,
        repo: String,
        revision: String,
    },
    /// `{base}/{file}`: any server holding the checkpoint files in one folder.
    Folder { base: String },
}

impl Remote {
    /// A hub repo on `hub` at revision `main`.
    pub fn hub(hub: &str, repo: &str) -> Self {
        Remote::Hub {
            hub: hub.trim_end_matches('/').to_string(),
            repo: repo.to_string(),
            revision: "main".to_string(),
        }
    }

    /// The URL of one file of the checkpoint.
    pub fn file_url(&self, file: &str) -> String {
        match self {
            Remote::Hub {
                hub,
                repo,
                revision,
            } => format!(
                "{hub}/{repo}/resolve/{}/{file}",
                revision.replace('/', "%2F")
            ),
            Remote::Folder { base } => format!("{}/{file}", base.trim_end_matches('/')),
        }
    }

    /// How the page names it: the repo id (with `@revision` unless `main`) or the URL.
    pub fn display(&self) -> String {
        match self {
            Remote::Hub { repo, revision, .. } if revision == "main" => repo.clone(),
            Remote::Hub { repo, revision, .. } => format!("{repo}@{revision}"),
            Remote::Folder { base } => base.clone(),
        }
    }

    /// The origin (scheme://host[:port]) requests go to, for the page's "only talks to"
    /// line; `None` for a relative URL (the page's own origin).
    pub fn origin(&self) -> Option<String> {
        let url = match self {
            Remote::Hub { hub, .. } => hub,
            Remote::Folder { base } => base,
        };
        let (scheme, rest) = url.split_once("://")?;
        let host = rest.split('/').next().unwrap_or(rest);
        Some(format!("{scheme}://{host}"))
    }
}

/// Reads what the user typed: a repo id (`owner/name`, optionally `@revision`), a hub URL
/// (`{hub}/owner/name`, `/tree/rev`, `/resolve/rev/file`, `/blob/rev/file`), or the URL of a
/// folder (or of one file in it) holding `config.json` and `model.safetensors`.
pub fn parse_model_ref(input: &str, hub: &str) -> Result<Remote, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err(
            "Type a Hugging Face repo id such as facebook/deit-tiny-patch16-224, or a URL."
                .to_string(),
        );
    }
    let hub = hub.trim_end_matches('/');
    if input.starts_with("http://") || input.starts_with("https://") {
        let url = input.split(['?', '#']).next().unwrap_or(input);
        let url = url.trim_end_matches('/');
        if let Some(path) = url.strip_prefix(hub).and_then(|p| p.strip_prefix('/')) {
            return parse_hub_path(hub, path);
        }
        if let Some((before, after)) = url.split_once("/resolve/") {
            // Another hub: {host}/{owner}/{name}/resolve/{revision}/{file}
            let (host_part, repo) = split_repo_tail(before)?;
            let revision = after.split('/').next().unwrap_or("main");
            return Ok(Remote::Hub {
                hub: host_part,
                repo,
                revision: revision.to_string(),
            });
        }
        let base = match url.rsplit_once('/') {
            Some((parent, last)) if last.ends_with(".json") || last.ends_with(".safetensors") => {
                parent.to_string()
            }
            _ => url.to_string(),
        };
        return Ok(Remote::Folder { base });
    }
    let (repo, revision) = match input.split_once('@') {
        Some((repo, revision)) if !revision.trim().is_empty() => (repo.trim(), revision.trim()),
        Some(_) => return Err(format!("`{input}`: the revision after @ is empty.")),
        None => (input, "main"),
    };
    check_repo_id(repo)?;
    Ok(Remote::Hub {
        hub: hub.to_string(),
        repo: repo.to_string(),
        revision: revision.to_string(),
    })
}

fn parse_hub_path(hub: &str, path: &str) -> Result<Remote, String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (repo, rest) = match parts.as_slice() {
        [owner, name, rest @ ..] if !matches!(*name, "resolve" | "tree" | "blob") => {
            (format!("{owner}/{name}"), rest)
        }
        [name, rest @ ..] => (name.to_string(), rest),
        [] => return Err(format!("`{hub}/` names no repository.")),
    };
    check_repo_id(&repo)?;
    let revision = match rest {
        [kind, revision, ..] if matches!(*kind, "tree" | "resolve" | "blob") => revision,
        _ => "main",
    };
    Ok(Remote::Hub {
        hub: hub.to_string(),
        repo,
        revision: revision.to_string(),
    })
}

/// Splits `https://host/a/b/owner/name` into (`https://host/a/b`, `owner/name`).
fn split_repo_tail(url: &str) -> Result<(String, String), String> {
    let (rest, name) = url
        .rsplit_once('/')
        .ok_or_else(|| format!("`{url}` has no repository name."))?;
    let (host, owner) = rest
        .rsplit_once('/')
        .ok_or_else(|| format!("`{url}` has no repository owner."))?;
    if !host.contains("://") || host.ends_with(':') || host.ends_with('/') {
        return Err(format!(
            "`{url}` is not a hub URL of the form https://host/owner/name."
        ));
    }
    let repo = format!("{owner}/{name}");
    check_repo_id(&repo)?;
    Ok((host.to_string(), repo))
}

fn check_repo_id(repo: &str) -> Result<(), String> {
    let parts: Vec<&str> = repo.split('/').collect();
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() > 2 || !parts.iter().all(|p| ok_part(p)) {
        return Err(format!(
            "`{repo}` is not a repo id. A repo id looks like owner/name, e.g. facebook/deit-tiny-patch16-224."
        ));
    }
    Ok(())
}

/// Human-readable byte counts: "812 B", "5.4 MB".
pub fn format_bytes(bytes: f64) -> String {
    if bytes < 1000.0 {
        format!("{bytes:.0} B")
    } else if bytes < 1e6 {
        format!("{:.1} kB", bytes / 1e3)
    } else {
        format!("{:.1} MB", bytes / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUB: &str = "https://huggingface.co";

    #[test]
    fn repo_ids_resolve_on_the_hub() {
        let remote = parse_model_ref(" facebook/deit-tiny-patch16-224 ", HUB).unwrap();
        assert_eq!(
            remote.file_url(CONFIG_FILE),
            "https://huggingface.co/facebook/deit-tiny-patch16-224/resolve/main/config.json"
        );
        assert_eq!(remote.display(), "facebook/deit-tiny-patch16-224");
        assert_eq!(remote.origin().as_deref(), Some("https://huggingface.co"));

        let pinned = parse_model_ref(
            "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k@refs/pr/3",
            HUB,
        )
        .unwrap();
        assert_eq!(
            pinned.file_url(WEIGHTS_FILE),
            "https://huggingface.co/timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k/resolve/refs%2Fpr%2F3/model.safetensors"
        );
        assert_eq!(
            pinned.display(),
            "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k@refs/pr/3"
        );
    }

    #[test]
    fn the_hub_base_is_configurable() {
        let remote = parse_model_ref("test/tiny", "http://127.0.0.1:9000/").unwrap();
        assert_eq!(
            remote.file_url(CONFIG_FILE),
            "http://127.0.0.1:9000/test/tiny/resolve/main/config.json"
        );
        let url = parse_model_ref(
            "http://127.0.0.1:9000/test/tiny/tree/v2",
            "http://127.0.0.1:9000",
        )
        .unwrap();
        assert_eq!(
            url,
            Remote::Hub {
                hub: "http://127.0.0.1:9000".into(),
                repo: "test/tiny".into(),
                revision: "v2".into()
            }
        );
    }

    #[test]
    fn hub_urls_of_every_kind_parse() {
        for (input, revision) in [
            ("https://huggingface.co/WinKawaks/vit-tiny-patch16-224", "main"),
            ("https://huggingface.co/WinKawaks/vit-tiny-patch16-224/", "main"),
            ("https://huggingface.co/WinKawaks/vit-tiny-patch16-224/tree/abc123", "abc123"),
            (
                "https://huggingface.co/WinKawaks/vit-tiny-patch16-224/resolve/main/config.json",
                "main",
            ),
            (
                "https://huggingface.co/WinKawaks/vit-tiny-patch16-224/blob/dev/model.safetensors?x=1",
                "dev",
            ),
        ] {
            let remote = parse_model_ref(input, HUB).unwrap();
            assert_eq!(
                remote,
                Remote::Hub {
                    hub: HUB.into(),
                    repo: "WinKawaks/vit-tiny-patch16-224".into(),
                    revision: revision.into()
                },
                "{input}"
            );
        }
        let mirror = parse_model_ref(
            "https://mirror.example/org/model/resolve/v1/config.json",
            HUB,
        )
        .unwrap();
        assert_eq!(
            mirror.file_url(WEIGHTS_FILE),
            "https://mirror.example/org/model/resolve/v1/model.safetensors"
        );
    }

    #[test]
    fn plain_urls_name_a_folder() {
        let folder = parse_model_ref("https://example.org/models/shapes/config.json", HUB).unwrap();
        assert_eq!(
            folder,
            Remote::Folder {
                base: "https://example.org/models/shapes".into()
            }
        );
        assert_eq!(
            folder.file_url(WEIGHTS_FILE),
            "https://example.org/models/shapes/model.safetensors"
        );
        let dir = parse_model_ref("https://example.org/models/shapes/", HUB).unwrap();
        assert_eq!(dir, folder);
        assert_eq!(dir.origin().as_deref(), Some("https://example.org"));
    }

    #[test]
    fn bad_references_say_what_a_good_one_looks_like() {
        for bad in [
            "",
            "   ",
            "a/b/c",
            "owner/na me",
            "owner/name@",
            "../etc/passwd",
            "/x",
        ] {
            let err = parse_model_ref(bad, HUB).unwrap_err();
            assert!(
                err.contains("repo id") || err.contains("revision") || err.contains("Type"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn presets_are_valid_repo_ids() {
        for preset in PRESETS {
            assert!(check_repo_id(preset.repo).is_ok(), "{}", preset.repo);
        }
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(format_bytes(812.0), "812 B");
        assert_eq!(format_bytes(5_400_000.0), "5.4 MB");
        assert_eq!(format_bytes(12_300.0), "12.3 kB");
    }
}
