# What `fitter deploy` bootstraps on bench/bootstrap/mesos-12.yaml, as a pyinfra deploy
# (bench/bootstrap_compare.sh runs it: `pyinfra -y --parallel 12 inventory.py deploy.py`,
# with the inventory of bench/bootstrap/make_inventory.py). The same files with the same
# contents, modes and owner per role, from the same Jinja2 templates as the ansible playbook
# (bench/bootstrap/ansible/templates/, given the variables those templates use); ZooKeeper
# started and enabled on the masters and restarted when one of its files changed; on the
# agents, stopped and disabled (fitter's `disable: [mesos-master, zookeeper]`; the Mesos
# units do not exist on these nodes, and fitter skips a service that has none).
import os

from pyinfra import host, inventory
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

TEMPLATES = os.environ.get("BENCH_TEMPLATES") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "ansible", "templates")

nodes = sorted(inventory, key=lambda h: h.data.get("order"))
zookeepers = [h for h in nodes if "zookeeper" in h.data.get("roles")]
masters = [h for h in nodes if "mesos-master" in h.data.get("roles")]
zk_connect = ",".join(f"{h.data.get('private_ip')}:2181" for h in zookeepers)
roles = host.data.get("roles")

context = {
    "deployment": host.data.get("deployment"),
    "groups": {"all": [h.name for h in nodes], "zookeeper": [h.name for h in zookeepers]},
    "hostvars": {h.name: {"private_ip": h.data.get("private_ip")} for h in nodes},
    "inventory_hostname": host.name,
    "private_ip": host.data.get("private_ip"),
    "zookeeper_heap_mb": 256,
    "mesos_zk": f"zk://{zk_connect}/mesos",
    "marathon_zk": f"zk://{zk_connect}/marathon",
    "mesos_quorum": len(masters) // 2 + 1,
}


def template(src, dest, **extra):
    return files.template(
        name=dest, src=os.path.join(TEMPLATES, src), dest=dest,
        mode="644", user="root", group="root", **context, **extra)


template("hosts.j2", "/etc/hosts")

if "zookeeper" in roles:
    zk_files = [
        template("zoo.cfg.j2", "/etc/zookeeper/conf/zoo.cfg"),
        template("myid.j2", "/etc/zookeeper/conf/myid"),
        template("zookeeper-default.j2", "/etc/default/zookeeper"),
    ]

if "mesos-master" in roles:
    template("mesos-zk.j2", "/etc/mesos/zk")
    template("mesos-quorum.j2", "/etc/mesos-master/quorum")
    template("private-ip.j2", "/etc/mesos-master/ip")
    template("private-ip.j2", "/etc/mesos-master/hostname")
    template("mesos-cluster.j2", "/etc/mesos-master/cluster")
    template("work_dir.j2", "/etc/mesos-master/work_dir")

if "marathon" in roles:
    template("marathon.j2", "/etc/default/marathon")

if "docker" in roles:
    template("daemon.json.j2", "/etc/docker/daemon.json")

if "mesos-agent" in roles:
    template("mesos-zk.j2", "/etc/mesos/zk")
    template("private-ip.j2", "/etc/mesos-slave/ip")
    template("private-ip.j2", "/etc/mesos-slave/hostname")
    template("containerizers.j2", "/etc/mesos-slave/containerizers")
    template("executor_registration_timeout.j2", "/etc/mesos-slave/executor_registration_timeout")
    template("work_dir.j2", "/etc/mesos-slave/work_dir")
    for key, value in sorted((host.data.get("mesos_attributes") or {}).items()):
        template("attribute.j2", f"/etc/mesos-slave/attributes/{key}", item={"key": key, "value": value})

if "zookeeper" in roles:
    # Restarted (or started, when down) if one of its files changed, then running and
    # enabled: a first run starts it once, as fitter does.
    systemd.service(name="ZooKeeper restarted (its files changed)", service="zookeeper",
                    running=True, restarted=True, _if=any_changed(*zk_files))
    systemd.service(name="ZooKeeper running and enabled", service="zookeeper",
                    running=True, enabled=True)
elif "mesos-agent" in roles:
    systemd.service(name="ZooKeeper stopped and disabled on agents", service="zookeeper",
                    running=False, enabled=False)
