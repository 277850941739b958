"""One process of the 2-process test (run by test_multihost.py, not collected by pytest).

usage: python -m tests.train.multihost_worker PORT PROCESS_ID WORKDIR OUT_JSON
"""

import json
import sys


def main(port: str, process_id: str, workdir: str, out: str) -> None:
  import jax  # imported here: XLA_FLAGS / JAX_PLATFORMS come from the parent

  from normzoo.train import train_and_evaluate
  from tests.train.helpers import tiny_config

  config = tiny_config(num_epochs=2)
  config.distributed.coordinator_address = f"127.0.0.1:{port}"
  config.distributed.num_processes = 2
  config.distributed.process_id = int(process_id)
  result = train_and_evaluate(config, workdir)
  result["process_index"] = jax.process_index()
  result["local_devices"] = jax.local_device_count()
  with open(out, "w") as f:
    json.dump(result, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
