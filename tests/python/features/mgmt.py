"""Out-of-band broker management for the feature tests: firehose tracing,
policies, vhosts, users and permissions, which RabbitMQ does not expose over
AMQP.

``make_mgmt()`` picks the implementation from ``BROKER_KIND``:

* ``rabbitmq`` (default): ``rabbitmqctl trace_on|trace_off -p V``,
  ``rabbitmqctl set_policy -p V --apply-to queues --priority N NAME PATTERN JSON``,
  ``rabbitmqctl clear_policy -p V NAME``;
* ``warren``: ``$WARREN_BIN ctl --amqp-url $AMQP_URL trace-on|trace-off --vhost V``,
  ``... set-policy NAME PATTERN JSON --apply-to queues --priority N --vhost V``,
  ``... clear-policy NAME --vhost V``; with ``WARREN_HTTP_URL`` set
  (``http://guest:guest@127.0.0.1:PORT``), ``--http-url $WARREN_HTTP_URL``
  instead: the same commands through the management HTTP API.

Vhosts, users and permissions (``rabbitmqctl`` name / ``warren ctl`` name):
``add_vhost``/``add-vhost NAME``, ``delete_vhost``/``delete-vhost NAME``,
``add_user``/``add-user NAME PASSWORD`` (+ ``set_user_tags``/``set-user-tags``
when tags are given), ``delete_user``/``delete-user NAME``,
``set_permissions -p V USER CONF WRITE READ``/``set-permissions -p V ...``,
``clear_permissions -p V USER``/``clear-permissions -p V USER``.

Any non-zero exit raises :class:`MgmtError` (e.g. an invalid policy definition).
"""

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import AMQP_URL

BROKER_KIND = os.environ.get("BROKER_KIND", "rabbitmq")
_HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(_HERE, "..", "..", ".."))
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(REPO_ROOT, "target", "debug", "warren"))
# How `warren ctl` reaches the broker: over AMQP (the control bus) unless a
# management API URL is given.
_CTL_URL = (["--http-url", os.environ["WARREN_HTTP_URL"]] if os.environ.get("WARREN_HTTP_URL")
            else ["--amqp-url", AMQP_URL])


class MgmtError(Exception):
    """The management command failed (non-zero exit), e.g. invalid policy."""

    def __init__(self, argv, returncode, output):
        super().__init__(f"{' '.join(argv)} -> exit {returncode}: {output.strip()}")
        self.returncode = returncode
        self.output = output


class Mgmt:
    """Out-of-band broker management: tracing and policies."""

    def __init__(self, vhost_name: str):
        self.vhost = vhost_name

    def _run(self, argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except FileNotFoundError as e:
            pytest.fail(f"management tool not found: {e}")
        if r.returncode != 0:
            raise MgmtError(argv, r.returncode, r.stdout + r.stderr)
        return r.stdout

    # interface ---------------------------------------------------------------
    def trace_on(self):
        raise NotImplementedError

    def trace_off(self):
        raise NotImplementedError

    def set_policy(self, name, pattern, definition: dict, apply_to="queues", priority=0):
        raise NotImplementedError

    def clear_policy(self, name):
        raise NotImplementedError

    def add_vhost(self, name):
        raise NotImplementedError

    def delete_vhost(self, name):
        raise NotImplementedError

    def add_user(self, name, password, tags=()):
        raise NotImplementedError

    def delete_user(self, name):
        raise NotImplementedError

    def set_permissions(self, user, configure, write, read, vhost=None):
        """``vhost`` defaults to this adapter's vhost."""
        raise NotImplementedError

    def clear_permissions(self, user, vhost=None):
        raise NotImplementedError


class RabbitMQCtl(Mgmt):
    def trace_on(self):
        self._run(["rabbitmqctl", "trace_on", "-p", self.vhost])

    def trace_off(self):
        self._run(["rabbitmqctl", "trace_off", "-p", self.vhost])

    def set_policy(self, name, pattern, definition, apply_to="queues", priority=0):
        self._run(["rabbitmqctl", "set_policy", "-p", self.vhost, "--apply-to", apply_to,
                   "--priority", str(priority), name, pattern, json.dumps(definition)])

    def clear_policy(self, name):
        self._run(["rabbitmqctl", "clear_policy", "-p", self.vhost, name])

    def add_vhost(self, name):
        self._run(["rabbitmqctl", "add_vhost", name])

    def delete_vhost(self, name):
        self._run(["rabbitmqctl", "delete_vhost", name])

    def add_user(self, name, password, tags=()):
        self._run(["rabbitmqctl", "add_user", name, password])
        if tags:
            self._run(["rabbitmqctl", "set_user_tags", name, *tags])

    def delete_user(self, name):
        self._run(["rabbitmqctl", "delete_user", name])

    def set_permissions(self, user, configure, write, read, vhost=None):
        self._run(["rabbitmqctl", "set_permissions", "-p", vhost or self.vhost,
                   user, configure, write, read])

    def clear_permissions(self, user, vhost=None):
        self._run(["rabbitmqctl", "clear_permissions", "-p", vhost or self.vhost, user])


class WarrenCtl(Mgmt):
    """``warren ctl --amqp-url URL <command> ... --vhost V`` (or ``--http-url``)."""

    def _ctl(self, *args, vhost=None):
        return self._run([WARREN_BIN, "ctl", *_CTL_URL, *args,
                          "--vhost", vhost or self.vhost])

    def trace_on(self):
        self._ctl("trace-on")

    def trace_off(self):
        self._ctl("trace-off")

    def set_policy(self, name, pattern, definition, apply_to="queues", priority=0):
        self._ctl("set-policy", name, pattern, json.dumps(definition),
                  "--apply-to", apply_to, "--priority", str(priority))

    def clear_policy(self, name):
        self._ctl("clear-policy", name)

    def add_vhost(self, name):
        self._ctl("add-vhost", name)

    def delete_vhost(self, name):
        self._ctl("delete-vhost", name)

    def add_user(self, name, password, tags=()):
        self._ctl("add-user", name, password)
        if tags:
            self._ctl("set-user-tags", name, *tags)

    def delete_user(self, name):
        self._ctl("delete-user", name)

    def set_permissions(self, user, configure, write, read, vhost=None):
        # "--" so that a pattern starting with "-" is not taken for an option.
        self._run([WARREN_BIN, "ctl", *_CTL_URL, "set-permissions",
                   "--vhost", vhost or self.vhost, "--", user, configure, write, read])

    def clear_permissions(self, user, vhost=None):
        self._ctl("clear-permissions", user, vhost=vhost)


class Policies:
    """Sets policies (in parallel: each rabbitmqctl call costs ~0.8 s) and
    clears every one of them at teardown."""

    def __init__(self, mgmt: Mgmt):
        self.mgmt = mgmt
        self.names = []

    def set(self, *specs):
        """Each spec: ``(name, pattern, definition[, priority])``."""
        for spec in specs:
            if spec[0] not in self.names:
                self.names.append(spec[0])
        with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
            futures = [pool.submit(self.mgmt.set_policy, s[0], s[1], s[2],
                                   "queues", s[3] if len(s) > 3 else 0) for s in specs]
            for f in futures:
                f.result()

    def clear(self, *names):
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = [pool.submit(self.mgmt.clear_policy, n) for n in names]
            for f in futures:
                f.result()
        for n in names:
            if n in self.names:
                self.names.remove(n)

    def clear_all(self):
        names, self.names = self.names, []
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            for f in [pool.submit(self.mgmt.clear_policy, n) for n in names]:
                try:
                    f.result()
                except MgmtError:
                    pass


def make_mgmt(vhost_name: str) -> Mgmt:
    if BROKER_KIND == "rabbitmq":
        return RabbitMQCtl(vhost_name)
    if BROKER_KIND == "warren":
        return WarrenCtl(vhost_name)
    raise pytest.UsageError(f"unknown BROKER_KIND={BROKER_KIND!r}")
