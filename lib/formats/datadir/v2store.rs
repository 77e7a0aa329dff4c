//! The v2 store JSON inside a restored member's `.snap` file: what etcd 3.4/3.5's
//! `v2store.Save()` writes after creating `/0/members/<hex>/raftAttributes` for each
//! member in ID order (docs/ETCD-RESTORE.md §2.5). Children maps are sorted as strings,
//! as Go's `encoding/json` sorts map keys; the event queue has 1000 slots.

use super::cluster::{Cluster, go_string, id_hex, raft_attributes_json};

const EVENT_QUEUE: usize = 1000;
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn node(path: &str, index: usize, value: &str, children: Option<&str>) -> String {
    format!(
        "{{\"Path\":{},\"CreatedIndex\":{index},\"ModifiedIndex\":{index},\"ExpireTime\":\"{ZERO_TIME}\",\"Value\":{},\"Children\":{}}}",
        go_string(path),
        go_string(value),
        children.unwrap_or("null")
    )
}

/// The JSON text for `cluster`.
pub fn v2_json(cluster: &Cluster) -> String {
    let n = cluster.members.len();
    // Creation index i for the i-th member by ID.
    let mut members: Vec<(String, usize, String)> = cluster
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| (id_hex(m.id), i + 1, raft_attributes_json(m)))
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let member_nodes: Vec<String> = members
        .iter()
        .map(|(hex, i, attrs)| {
            let base = format!("/0/members/{hex}");
            let leaf = node(&format!("{base}/raftAttributes"), *i, attrs, None);
            let children = format!("{{\"raftAttributes\":{leaf}}}");
            format!(
                "{}:{}",
                go_string(hex),
                node(&base, *i, "", Some(&children))
            )
        })
        .collect();
    let members_node = node(
        "/0/members",
        1,
        "",
        Some(&format!("{{{}}}", member_nodes.join(","))),
    );
    let zero = node(
        "/0",
        0,
        "",
        Some(&format!("{{\"members\":{members_node}}}")),
    );
    let one = node("/1", 0, "", Some("{}"));
    let root = node("/", 0, "", Some(&format!("{{\"0\":{zero},\"1\":{one}}}")));

    let mut events: Vec<String> = cluster
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "{{\"action\":\"create\",\"node\":{{\"key\":{},\"value\":{},\"modifiedIndex\":{idx},\"createdIndex\":{idx}}}}}",
                go_string(&format!("/0/members/{}/raftAttributes", id_hex(m.id))),
                go_string(&raft_attributes_json(m)),
                idx = i + 1
            )
        })
        .collect();
    events.resize(EVENT_QUEUE, "null".to_string());
    format!(
        "{{\"Root\":{root},\"WatcherHub\":{{\"EventHistory\":{{\"Queue\":{{\"Events\":[{}],\"Size\":{n},\"Front\":0,\"Back\":{n},\"Capacity\":{EVENT_QUEUE}}},\"StartIndex\":1,\"LastIndex\":{n}}}}},\"CurrentIndex\":{n},\"Stats\":{{\"getsSuccess\":0,\"getsFail\":0,\"setsSuccess\":0,\"setsFail\":0,\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\"createSuccess\":{n},\"createFail\":0,\"compareAndSwapSuccess\":0,\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":0}},\"CurrentVersion\":2}}",
        events.join(",")
    )
}
