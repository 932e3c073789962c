//! The control commands: talk to a running name server and print what it
//! says, as text for people or JSON for scripts.

use anyhow::Context;
use rmi_core::{Config, Host, HostPort, ObjectUri};
use rmi_proxy::{MetaMatch, NameFilter, Registration, locate_ns_with};
use serde_json::json;

use crate::{Command, Common};

/// Runs `command` against the name server the options point at.
pub(crate) async fn run(command: Command, common: &Common, config: Config) -> anyhow::Result<()> {
    let address = match &common.host {
        Some(hosts) => {
            let listed =
                rmi_core::config::parse_ns_hosts("--host", hosts).map_err(|e| anyhow::anyhow!("{e}"))?;
            let listed: Vec<String> =
                listed.iter().map(|h| h.with_default_port(config.ns_port).to_string()).collect();
            Some(listed.join(","))
        }
        None if common.no_broadcast && config.ns_hosts.is_empty() => {
            Some(HostPort { host: Host::V4(std::net::Ipv4Addr::LOCALHOST), port: config.ns_port }.to_string())
        }
        None => None,
    };
    let ns = locate_ns_with(&config, address.as_deref()).await.context("cannot reach the name server")?;
    let json = common.json;
    match command {
        // `main` serves, and writes certificates, without coming here.
        Command::Serve | Command::DevCerts { .. } => {}
        Command::List { prefix, regex } => {
            let filter = match (prefix, regex) {
                (Some(p), _) => NameFilter::Prefix(p),
                (_, Some(r)) => NameFilter::Regex(r),
                _ => NameFilter::All,
            };
            print_registrations(&ns.list(filter).await?, json);
        }
        Command::Lookup { name } => {
            let found = ns.lookup_registration(&name).await?;
            if json {
                println!("{}", registration_json(&found));
            } else {
                print_registrations(std::slice::from_ref(&found), false);
            }
        }
        Command::Register { name, uri, meta, safe } => {
            let uri: ObjectUri = uri.parse().map_err(|e: rmi_core::UriError| anyhow::anyhow!("{e}"))?;
            ns.register_with(&name, &uri, meta, safe).await?;
            if json {
                println!("{}", json!({ "registered": name, "uri": uri.to_string() }));
            } else {
                println!("registered {name} --> {uri}");
            }
        }
        Command::Remove { name, prefix, regex } => {
            let (filter, single) = match (name, prefix, regex) {
                (Some(n), _, _) => (NameFilter::Exact(n.clone()), Some(n)),
                (_, Some(p), _) => (NameFilter::Prefix(p), None),
                (_, _, Some(r)) => (NameFilter::Regex(r), None),
                _ => anyhow::bail!("say what to remove: a name, --prefix or --regex"),
            };
            let removed = ns.remove_matching(filter).await?;
            if let Some(name) = &single {
                anyhow::ensure!(removed > 0, "no name {name:?} is registered");
            }
            if json {
                println!("{}", json!({ "removed": removed }));
            } else {
                println!("removed {removed} name{}", if removed == 1 { "" } else { "s" });
            }
        }
        Command::Setmeta { name, tags } => {
            ns.set_metadata(&name, tags.clone()).await?;
            if json {
                println!("{}", json!({ "name": name, "metadata": tags }));
            } else {
                println!(
                    "metadata of {name}: {}",
                    if tags.is_empty() { "(none)".to_owned() } else { tags.join(", ") }
                );
            }
        }
        Command::Yplookup { all: _, any, tags } => {
            let mode = if any { MetaMatch::Any } else { MetaMatch::All };
            print_registrations(&ns.yplookup(tags, mode).await?, json);
        }
        Command::Describe { name } => {
            let found = ns.lookup_registration(&name).await?;
            let proxy = rmi_proxy::Proxy::builder_with_config(&found.uri, &config)
                .build()
                .with_context(|| format!("cannot call {}", found.uri))?;
            let described = proxy
                .describe()
                .await
                .with_context(|| format!("cannot ask {} to describe {}", found.uri, found.uri.object))?;
            print_description(&found, &described, json);
        }
        Command::Call { name, method, args } => {
            let found = ns.lookup_registration(&name).await?;
            let proxy = rmi_proxy::Proxy::builder_with_config(&found.uri, &config)
                .build()
                .with_context(|| format!("cannot call {}", found.uri))?;
            let result = proxy
                .call_json(&method, &args)
                .await
                .with_context(|| format!("{name}.{method} ({}) failed", found.uri))?;
            println!("{result}");
        }
        Command::Count => {
            let count = ns.count().await?;
            if json {
                println!("{}", json!({ "count": count }));
            } else {
                println!("{count}");
            }
        }
        Command::Ping => {
            ns.ping().await?;
            if json {
                println!("{}", json!({ "alive": true, "uri": ns.uri().to_string() }));
            } else {
                println!("name server {} is alive", ns.uri());
            }
        }
    }
    Ok(())
}

fn print_description(r: &Registration, d: &rmi_core::object::ObjectDescription, json: bool) {
    if json {
        let methods: Vec<_> = d
            .methods
            .iter()
            .map(|m| json!({ "name": m.name, "signature": m.signature, "oneway": m.oneway, "stream": m.stream }))
            .collect();
        let described = json!({
            "name": r.name,
            "uri": r.uri.to_string(),
            "type": d.type_name,
            "instance_mode": d.instance_mode,
            "methods": methods,
        });
        println!("{described}");
        return;
    }
    println!("{} --> {}", r.name, r.uri);
    println!("    type: {}", d.type_name);
    println!("    instances: {}", d.instance_mode);
    println!("    methods:");
    for m in &d.methods {
        let flags = match (m.oneway, m.stream) {
            (true, _) => "   [oneway]",
            (_, true) => "   [stream]",
            _ => "",
        };
        println!("        {}{flags}", m.signature);
    }
}

fn registration_json(r: &Registration) -> serde_json::Value {
    json!({ "name": r.name, "uri": r.uri.to_string(), "metadata": r.metadata })
}

fn print_registrations(found: &[Registration], json: bool) {
    if json {
        let all: Vec<_> = found.iter().map(registration_json).collect();
        println!("{}", serde_json::Value::Array(all));
        return;
    }
    for r in found {
        println!("{} --> {}", r.name, r.uri);
        if !r.metadata.is_empty() {
            let tags: Vec<&str> = r.metadata.iter().map(String::as_str).collect();
            println!("    metadata: {}", tags.join(", "));
        }
    }
}
