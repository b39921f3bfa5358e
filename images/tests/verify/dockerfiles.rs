//! The `Dockerfile` beside each image definition builds the same image: the
//! same package and binary (or module), user, working folder, environment,
//! port, entrypoint and files, on `scratch`, with nothing else in the final
//! stage.

use std::collections::{BTreeMap, BTreeSet};

use oci_images::Kind;
use oci_images::compile::{MUSL_TARGET, SERVICE_PROFILE, WASM_PROFILE, WASM_TARGET};

use crate::support::built;

/// One instruction: keyword (upper case) and its arguments.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of each stage, in order (comments, blank lines and the
/// parser directive left out; `\` continuations joined).
fn stages(text: &str) -> Vec<Vec<Instruction>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_uppercase(),
            args: args.trim().to_string(),
        };
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("a Dockerfile starts with FROM")
            .push(instruction);
    }
    stages
}

/// What the final stage of a Dockerfile declares.
#[derive(Debug, Default)]
struct Final {
    base: String,
    /// (flags, source, destination)
    copies: Vec<(Vec<String>, String, String)>,
    user: Option<String>,
    workdir: Option<String>,
    env: BTreeMap<String, String>,
    expose: Vec<String>,
    entrypoint: Option<Vec<String>>,
    /// Instructions this check does not know (a shell-less image can't RUN).
    others: Vec<String>,
}

fn final_stage(stage: &[Instruction]) -> Final {
    let mut out = Final::default();
    for instruction in stage {
        let args = instruction.args.clone();
        match instruction.keyword.as_str() {
            "FROM" => out.base = args,
            "COPY" => {
                let words: Vec<String> = args.split_whitespace().map(str::to_string).collect();
                let (flags, paths): (Vec<String>, Vec<String>) =
                    words.into_iter().partition(|w| w.starts_with("--"));
                assert_eq!(paths.len(), 2, "COPY {args}: one source, one destination");
                out.copies.push((flags, paths[0].clone(), paths[1].clone()));
            }
            "USER" => out.user = Some(args),
            "WORKDIR" => out.workdir = Some(args),
            "ENV" => {
                let (key, value) = args.split_once('=').expect("ENV KEY=value");
                out.env.insert(key.to_string(), value.to_string());
            }
            "EXPOSE" => out.expose.push(args),
            "ENTRYPOINT" => {
                out.entrypoint =
                    Some(serde_json::from_str(&args).expect("ENTRYPOINT in exec form"));
            }
            other => out.others.push(format!("{other} {args}")),
        }
    }
    out
}

/// The `RUN` commands of the build stages.
fn build_commands(stages: &[Vec<Instruction>]) -> String {
    stages[..stages.len() - 1]
        .iter()
        .flatten()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.args.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

fn has_words(command: &str, words: &[&str]) -> bool {
    command
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(words.len())
        .any(|w| w == words)
}

#[test]
fn every_dockerfile_builds_what_its_definition_says() {
    let built = built();
    let user = built.catalog.shared.user;
    for definition in &built.catalog.images {
        let path = definition.dockerfile();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (every image has a Dockerfile)", path.display()));
        let stages = stages(&text);
        assert!(
            stages.len() >= 2,
            "{}: a build stage and the image",
            path.display()
        );
        let image = final_stage(stages.last().expect("a stage"));
        let build = build_commands(&stages);
        let at = path.display();
        assert_eq!(image.base, "scratch", "{at}: an empty base");
        assert!(
            image.others.is_empty(),
            "{at}: unexpected {:?}",
            image.others
        );
        match &definition.kind {
            Kind::Plugin(plugin) => {
                assert!(
                    has_words(&build, &["-p", &plugin.package])
                        && has_words(&build, &["--profile", WASM_PROFILE])
                        && has_words(&build, &["--target", WASM_TARGET]),
                    "{at}: builds {} for {WASM_TARGET} with profile {WASM_PROFILE}: {build}",
                    plugin.package
                );
                let module = format!(
                    "/{WASM_TARGET}/{WASM_PROFILE}/{}.wasm",
                    plugin.package.replace('-', "_")
                );
                let [(flags, source, destination)] = image.copies.as_slice() else {
                    panic!(
                        "{at}: one COPY (one layer) holding plugin.wasm: {:?}",
                        image.copies
                    );
                };
                assert!(flags.iter().any(|f| f.starts_with("--from=")), "{at}");
                assert!(
                    source.ends_with(&module),
                    "{at}: copies {source}, not {module}"
                );
                assert_eq!(destination, "/plugin.wasm", "{at}");
                assert_eq!(image.user, None, "{at}");
                assert_eq!(image.entrypoint, None, "{at}");
            }
            Kind::Service(service) => {
                assert!(
                    has_words(&build, &["-p", &service.package, "--bin", &service.binary])
                        && has_words(&build, &["--profile", SERVICE_PROFILE])
                        && has_words(&build, &["--target", MUSL_TARGET]),
                    "{at}: builds {} of {} for {MUSL_TARGET} with profile {SERVICE_PROFILE}: {build}",
                    service.binary,
                    service.package
                );
                let entrypoint = format!("/usr/local/bin/{}", service.binary);
                assert_eq!(image.user, Some(format!("{user}:{user}")), "{at}");
                assert_eq!(image.entrypoint, Some(vec![entrypoint.clone()]), "{at}");
                assert_eq!(image.expose, vec![service.port.to_string()], "{at}");
                assert_eq!(image.workdir, service.workdir, "{at}");
                let mut env: BTreeMap<String, String> = service.env.clone();
                env.insert("PATH".into(), "/usr/local/bin".into());
                assert_eq!(image.env, env, "{at}: ENV");

                let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
                wanted.insert((
                    format!("/{MUSL_TARGET}/{SERVICE_PROFILE}/{}", service.binary),
                    entrypoint,
                ));
                for file in &service.files {
                    wanted.insert((file.source.display().to_string(), file.target.clone()));
                }
                if let Some(workdir) = &service.workdir {
                    wanted.insert((workdir.clone(), workdir.clone()));
                }
                let mut copied: BTreeSet<(String, String)> = BTreeSet::new();
                for (flags, source, destination) in &image.copies {
                    let from_build = flags.iter().any(|f| f.starts_with("--from="));
                    let key = if from_build && destination.starts_with("/usr/local/bin/") {
                        let suffix = source
                            .find(&format!("/{MUSL_TARGET}/"))
                            .map(|i| source[i..].to_string())
                            .unwrap_or_else(|| source.clone());
                        (suffix, destination.clone())
                    } else if from_build {
                        // The working folder, made in the build stage and
                        // owned by the user.
                        assert!(
                            flags.contains(&format!("--chown={user}:{user}")),
                            "{at}: {destination} must belong to {user}:{user}"
                        );
                        (destination.clone(), destination.clone())
                    } else {
                        (source.clone(), destination.clone())
                    };
                    copied.insert(key);
                }
                assert_eq!(copied, wanted, "{at}: COPY");
            }
        }
    }
}

#[test]
fn the_parser_sees_continuations_and_stages() {
    let stages = stages(
        "# syntax=docker/dockerfile:1\nFROM a AS build\nRUN x \\\n && y\n\nFROM scratch\n# c\nUSER 1:1\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0][1].args, "x  && y");
    assert_eq!(final_stage(&stages[1]).user.as_deref(), Some("1:1"));
}
