//! Semantic checks: what a well-typed snapshot can still get wrong.
//!
//! The walk order (listeners, then clusters; fields in declaration order) is part of the
//! contract: `meshcore.compile.snapshot` walks the same way, so both sides report the same
//! first error for the same input.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::{Cluster, ErrorCode, Listener, Protocol, Snapshot, SnapshotError};

pub(crate) fn validate(snapshot: &Snapshot) -> Result<(), Vec<SnapshotError>> {
    let mut errors = Vec::new();
    if snapshot.version.trim().is_empty() {
        errors.push(SnapshotError::new(
            "version",
            ErrorCode::InvalidValue,
            "must not be empty",
        ));
    }
    let clusters: HashMap<&str, usize> = first_index_by_name(&snapshot.clusters, |c| &c.name);
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut sockets: Vec<(IpAddr, u16, usize)> = Vec::new();
    for (i, listener) in snapshot.listeners.iter().enumerate() {
        check_listener(
            listener,
            i,
            &clusters,
            &mut names,
            &mut sockets,
            &snapshot.listeners,
            &mut errors,
        );
    }
    let mut cluster_names: HashMap<&str, usize> = HashMap::new();
    for (i, cluster) in snapshot.clusters.iter().enumerate() {
        check_cluster(cluster, i, &mut cluster_names, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn first_index_by_name<T>(items: &[T], name: impl Fn(&T) -> &String) -> HashMap<&str, usize> {
    let mut map = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        map.entry(name(item).as_str()).or_insert(i);
    }
    map
}

fn check_name<'a>(
    name: &'a str,
    path: &str,
    kind: &str,
    collection: &str,
    seen: &mut HashMap<&'a str, usize>,
    index: usize,
    errors: &mut Vec<SnapshotError>,
) {
    if name.is_empty() {
        errors.push(SnapshotError::new(
            path,
            ErrorCode::InvalidValue,
            "must not be empty",
        ));
    } else if let Some(first) = seen.get(name) {
        errors.push(SnapshotError::new(
            path,
            ErrorCode::Duplicate,
            format!("duplicate {kind} name \"{name}\" (first used by {collection}[{first}])"),
        ));
    } else {
        seen.insert(name, index);
    }
}

fn check_ip(address: &str, path: &str, errors: &mut Vec<SnapshotError>) -> Option<IpAddr> {
    match address.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            errors.push(SnapshotError::new(
                path,
                ErrorCode::InvalidValue,
                format!("\"{address}\" is not an IP address"),
            ));
            None
        }
    }
}

fn check_port(port: u16, path: &str, errors: &mut Vec<SnapshotError>) -> bool {
    if port == 0 {
        errors.push(SnapshotError::new(
            path,
            ErrorCode::OutOfRange,
            "must be between 1 and 65535",
        ));
        return false;
    }
    true
}

/// Two sockets collide when the ports match and either address covers the other
/// (`0.0.0.0` covers every IPv4 address, `::` every IPv6 one).
fn sockets_collide(a: IpAddr, b: IpAddr) -> bool {
    a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

#[allow(clippy::too_many_arguments)]
fn check_listener<'a>(
    listener: &'a Listener,
    i: usize,
    clusters: &HashMap<&str, usize>,
    names: &mut HashMap<&'a str, usize>,
    sockets: &mut Vec<(IpAddr, u16, usize)>,
    all: &[Listener],
    errors: &mut Vec<SnapshotError>,
) {
    let at = format!("listeners[{i}]");
    check_name(
        &listener.name,
        &format!("{at}.name"),
        "listener",
        "listeners",
        names,
        i,
        errors,
    );
    let ip = check_ip(&listener.address, &format!("{at}.address"), errors);
    let port_ok = check_port(listener.port, &format!("{at}.port"), errors);
    if let (Some(ip), true) = (ip, port_ok) {
        let clash = sockets
            .iter()
            .find(|(other, port, _)| *port == listener.port && sockets_collide(ip, *other));
        if let Some((_, _, first)) = clash {
            errors.push(SnapshotError::new(
                format!("{at}.port"),
                ErrorCode::Duplicate,
                format!(
                    "{}:{} collides with listeners[{first}] \"{}\" ({}:{})",
                    listener.address,
                    listener.port,
                    all[*first].name,
                    all[*first].address,
                    all[*first].port
                ),
            ));
        } else {
            sockets.push((ip, listener.port, i));
        }
    }
    match (listener.protocol, &listener.tcp_route) {
        (Protocol::Tcp, None) => errors.push(SnapshotError::new(
            format!("{at}.tcp_route"),
            ErrorCode::MissingField,
            "required for protocol tcp",
        )),
        (Protocol::Tcp, Some(route)) => {
            let route_at = format!("{at}.tcp_route.clusters");
            if route.clusters.is_empty() {
                errors.push(SnapshotError::new(
                    &route_at,
                    ErrorCode::InvalidValue,
                    "must name at least one cluster",
                ));
            }
            for (j, target) in route.clusters.iter().enumerate() {
                if !clusters.contains_key(target.name.as_str()) {
                    errors.push(SnapshotError::new(
                        format!("{route_at}[{j}].name"),
                        ErrorCode::UnknownReference,
                        format!("unknown cluster \"{}\"", target.name),
                    ));
                }
            }
            let total: u64 = route.clusters.iter().map(|c| u64::from(c.weight)).sum();
            if !route.clusters.is_empty() && total == 0 {
                errors.push(SnapshotError::new(
                    &route_at,
                    ErrorCode::InvalidValue,
                    "weights must add up to more than 0",
                ));
            }
        }
    }
}

fn check_cluster<'a>(
    cluster: &'a Cluster,
    i: usize,
    names: &mut HashMap<&'a str, usize>,
    errors: &mut Vec<SnapshotError>,
) {
    let at = format!("clusters[{i}]");
    check_name(
        &cluster.name,
        &format!("{at}.name"),
        "cluster",
        "clusters",
        names,
        i,
        errors,
    );
    if cluster.connect_timeout_ms == 0 {
        errors.push(SnapshotError::new(
            format!("{at}.connect_timeout_ms"),
            ErrorCode::OutOfRange,
            "must be at least 1",
        ));
    }
    for (j, endpoint) in cluster.endpoints.iter().enumerate() {
        let ep = format!("{at}.endpoints[{j}]");
        check_ip(&endpoint.address, &format!("{ep}.address"), errors);
        check_port(endpoint.port, &format!("{ep}.port"), errors);
        if endpoint.weight == 0 {
            errors.push(SnapshotError::new(
                format!("{ep}.weight"),
                ErrorCode::OutOfRange,
                "must be at least 1",
            ));
        }
    }
}
