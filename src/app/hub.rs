//! Where a model comes from: the embedded default, a Hugging Face hub repo, a plain URL, or
//! files the user picked. Pure string handling, tested natively.
//!
//! What a user types (or a link's `?model=` and `?hub=` say) is checked before any request:
//! only absolute `http(s)://` URLs without credentials, repo ids and revisions of the hub's
//! characters only, so no reference can point a request anywhere else.

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

/// Longest repo id the hub accepts (owner and name together).
pub const MAX_REPO_ID_LEN: usize = 96;
/// Longest revision accepted: a branch, a tag, `refs/pr/N` or a 40-digit commit fit easily.
pub const MAX_REVISION_LEN: usize = 128;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// What a good reference looks like, for messages.
const GOOD_REFERENCE: &str =
    "use a repo id such as facebook/deit-tiny-patch16-224 or a URL that starts with https://";

/// Reads what the user typed: a repo id (`owner/name`, optionally `@revision`), a hub URL
/// (`{hub}/owner/name`, `/tree/rev`, `/resolve/rev/file`, `/blob/rev/file`), or the URL of a
/// folder (or of one file in it) holding `config.json` and `model.safetensors`.
///
/// Only absolute `http://` and `https://` URLs are URLs here: `//host/…`, `javascript:`,
/// `data:`, `file:` and the like are refused, as are URLs with a user name or password.
/// Repo ids and revisions are checked against the hub's characters ([`check_repo_id`],
/// [`check_revision`]), so neither can climb out of `{hub}/{repo}/resolve/{revision}/`.
pub fn parse_model_ref(input: &str, hub: &str) -> Result<Remote, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err(
            "Type a Hugging Face repo id such as facebook/deit-tiny-patch16-224, or a URL."
                .to_string(),
        );
    }
    let hub = check_hub_url(hub)?;
    let hub = hub.as_str();
    if has_scheme(input) {
        let url = parse_http_url(input)?;
        let url = format!("{}{}", url.origin, url.path.trim_end_matches('/'));
        if let Some(path) = url.strip_prefix(hub).and_then(|p| p.strip_prefix('/')) {
            return parse_hub_path(hub, path);
        }
        if let Some((before, after)) = url.split_once("/resolve/") {
            // Another hub: {host}/{owner}/{name}/resolve/{revision}/{file}
            let (host_part, repo) = split_repo_tail(before)?;
            let revision = url_revision(after.split('/').next().unwrap_or("main"))?;
            return Ok(Remote::Hub {
                hub: host_part,
                repo,
                revision,
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
    if input.starts_with("//") || input.contains(':') || input.contains('\\') {
        return Err(format!(
            "`{input}` is neither a repo id nor an http(s) URL; {GOOD_REFERENCE}."
        ));
    }
    let (repo, revision) = match input.split_once('@') {
        Some((repo, revision)) if !revision.trim().is_empty() => (repo.trim(), revision.trim()),
        Some(_) => {
            return Err(format!(
                "`{input}`: the revision after @ is empty; give a branch, tag or commit, or drop the @."
            ))
        }
        None => (input, "main"),
    };
    check_repo_id(repo)?;
    check_revision(revision)?;
    Ok(Remote::Hub {
        hub: hub.to_string(),
        repo: repo.to_string(),
        revision: revision.to_string(),
    })
}

/// Checks a `?hub=` value before the page uses it: an absolute `http://` or `https://` URL
/// with a host, without user name, password, query or fragment. Returns it without a
/// trailing `/`, ready for `{hub}/{repo}/resolve/{revision}/{file}`.
pub fn check_hub_url(hub: &str) -> Result<String, String> {
    let hub = hub.trim();
    let scheme = hub
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(format!(
            "the hub `{}` is not an http(s) URL; use an address such as https://huggingface.co",
            hub.escape_debug()
        ));
    }
    let url = parse_http_url(hub).map_err(|e| format!("the hub {e}"))?;
    if url.query_or_fragment {
        return Err(format!(
            "the hub `{hub}` has a query or fragment; remove everything from `?` or `#` on"
        ));
    }
    Ok(format!("{}{}", url.origin, url.path.trim_end_matches('/')))
}

/// An absolute http(s) URL, taken apart.
struct HttpUrl {
    /// `scheme://host[:port]`, the scheme in lower case.
    origin: String,
    /// From the `/` after the host up to any `?` or `#`; may be empty.
    path: String,
    /// Whether a `?` or `#` followed the path.
    query_or_fragment: bool,
}

/// Whether `input` starts with a URL scheme (`letters:`), as `https:`, `javascript:` or
/// `data:` do.
fn has_scheme(input: &str) -> bool {
    input.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
    })
}

/// Takes an absolute http(s) URL apart, refusing every other scheme, credentials, odd
/// characters, a missing or malformed host and `..` in the path.
fn parse_http_url(input: &str) -> Result<HttpUrl, String> {
    if input.len() > MAX_URL_LEN {
        return Err(format!(
            "the URL is {} characters long; use one of at most {MAX_URL_LEN}",
            input.len()
        ));
    }
    if input
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(format!(
            "`{}` holds spaces, control characters or backslashes; use a plain http(s) URL",
            input.escape_debug()
        ));
    }
    let (scheme, rest) = input.split_once("://").unwrap_or((input, ""));
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "`{input}` is not an http(s) URL; {GOOD_REFERENCE}."
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if let Some((_, host)) = authority.rsplit_once('@') {
        // Never echo the secret back into a message that the page shows.
        return Err(format!(
            "`{scheme}://…@{host}` carries a user name or password; remove them (everything up to `@`) from the URL"
        ));
    }
    check_authority(input, authority)?;
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = &tail[..path_end];
    // `%2e%2e` is `..` once the browser normalises the path.
    let climbs = |segment: &str| segment.to_ascii_lowercase().replace("%2e", ".") == "..";
    if path.split('/').any(climbs) {
        return Err(format!(
            "`{input}` climbs up with `..`; remove it from the URL"
        ));
    }
    Ok(HttpUrl {
        origin: format!("{scheme}://{}", authority.to_ascii_lowercase()),
        path: path.to_string(),
        query_or_fragment: path_end < tail.len(),
    })
}

/// `host[:port]`: a name or IPv4 address of letters, digits, `-` and `.`, or `[IPv6]`, and
/// a port of 1 to 65535.
fn check_authority(input: &str, authority: &str) -> Result<(), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest))
                if !addr.is_empty() && addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') =>
            {
                (authority, rest.strip_prefix(':'))
            }
            _ => ("", None),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok {
        return Err(format!(
            "`{input}` has no valid host; use a URL such as https://huggingface.co/owner/name"
        ));
    }
    Ok(())
}

fn parse_hub_path(hub: &str, path: &str) -> Result<Remote, String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (repo, rest) = match parts.as_slice() {
        [owner, name, rest @ ..] if !matches!(*name, "resolve" | "tree" | "blob") => {
            (format!("{owner}/{name}"), rest)
        }
        [name, rest @ ..] => (name.to_string(), rest),
        [] => {
            return Err(format!(
                "`{hub}/` names no repository; add owner/name after it."
            ))
        }
    };
    check_repo_id(&repo)?;
    let revision = match rest {
        [kind, revision, ..] if matches!(*kind, "tree" | "resolve" | "blob") => {
            url_revision(revision)?
        }
        _ => "main".to_string(),
    };
    Ok(Remote::Hub {
        hub: hub.to_string(),
        repo,
        revision,
    })
}

/// A revision as it appears in a hub URL (`refs%2Fpr%2F3`), decoded and checked.
fn url_revision(segment: &str) -> Result<String, String> {
    let revision = segment.replace("%2F", "/").replace("%2f", "/");
    check_revision(&revision)?;
    Ok(revision)
}

/// Splits `https://host/a/b/owner/name` into (`https://host/a/b`, `owner/name`).
fn split_repo_tail(url: &str) -> Result<(String, String), String> {
    let (rest, name) = url
        .rsplit_once('/')
        .ok_or_else(|| format!("`{url}` has no repository name; use https://host/owner/name."))?;
    let (host, owner) = rest
        .rsplit_once('/')
        .ok_or_else(|| format!("`{url}` has no repository owner; use https://host/owner/name."))?;
    if !host.contains("://") || host.ends_with(':') || host.ends_with('/') {
        return Err(format!(
            "`{url}` is not a hub URL; use the form https://host/owner/name."
        ));
    }
    let repo = format!("{owner}/{name}");
    check_repo_id(&repo)?;
    Ok((host.to_string(), repo))
}

/// A hub repo id: `name` or `owner/name`, each part of ASCII letters, digits, `-`, `_` and
/// `.`, not starting or ending with `-` or `.`, without `--` or `..` (the hub's own rules),
/// at most [`MAX_REPO_ID_LEN`] characters in all.
pub fn check_repo_id(repo: &str) -> Result<(), String> {
    let parts: Vec<&str> = repo.split('/').collect();
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && !p.ends_with(['.', '-'])
            && !p.contains("..")
            && !p.contains("--")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() > 2 || repo.len() > MAX_REPO_ID_LEN || !parts.iter().all(|p| ok_part(p)) {
        return Err(format!(
            "`{}` is not a repo id; use owner/name, e.g. facebook/deit-tiny-patch16-224 \
             (letters, digits, -, _ and ., no `..`, at most {MAX_REPO_ID_LEN} characters).",
            repo.escape_debug()
        ));
    }
    Ok(())
}

/// A revision: a branch, tag, `refs/pr/N` or commit, of ASCII letters, digits, `.`, `_`,
/// `-` and `/`, without `..`, `//` or a leading or trailing `/`, at most
/// [`MAX_REVISION_LEN`] characters.
pub fn check_revision(revision: &str) -> Result<(), String> {
    let ok = !revision.is_empty()
        && revision.len() <= MAX_REVISION_LEN
        && !revision.contains("..")
        && !revision.contains("//")
        && !revision.starts_with('/')
        && !revision.ends_with('/')
        && revision
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if !ok {
        return Err(format!(
            "`{}` is not a revision; use a branch, tag or commit such as main, v1.0 or refs/pr/3 \
             (letters, digits, ., _, - and /, no `..`, at most {MAX_REVISION_LEN} characters).",
            revision.escape_debug()
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
