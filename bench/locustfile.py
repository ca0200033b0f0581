"""Locust load for Pythmata (Debian's python3-locust 2.x), the quick-start mix:
start straight-through instances, start an OrderProcess and complete its approval task, and read
the definition list. bench/run.sh runs it headless for a short bounded time:

    locust -f bench/locustfile.py --headless -u 50 -r 25 -t 20s --host http://127.0.0.1:PORT

The models of bench/models must be deployed first (run.sh does it). A reply counts as a failure
when its status or its body is not what the API promises (201 COMPLETED, 200 with items, ...).
Locust is a Python load generator: on 2 shared cores it, not the server, is the bound.
"""
from locust import HttpUser, between, task

JSON = {"Content-Type": "application/json"}


class EngineUser(HttpUser):
    wait_time = between(0, 0.01)

    @task(5)
    def start_straight(self):
        with self.client.post("/api/v1/processes/straight/instances",
                              json={"variables": {"amount": 150}}, headers=JSON,
                              name="start straight", catch_response=True) as r:
            if r.status_code != 201 or '"COMPLETED"' not in r.text:
                r.failure(f"status {r.status_code}: {r.text[:100]}")

    @task(2)
    def order_with_approval(self):
        with self.client.post("/api/v1/processes/OrderProcess/instances",
                              json={"variables": {"amount": 500}}, headers=JSON,
                              name="start OrderProcess", catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"status {r.status_code}: {r.text[:100]}")
                return
            instance = r.json()["data"]["id"]
        with self.client.get(f"/api/v1/tasks?instance_id={instance}", name="tasks of instance",
                             catch_response=True) as r:
            items = r.json()["data"]["items"] if r.status_code == 200 else []
            if not items:
                r.failure(f"no open task for {instance}")
                return
            task_id = items[0]["id"]
        with self.client.post(f"/api/v1/tasks/{task_id}/complete",
                              json={"variables": {"approved": True}}, headers=JSON,
                              name="complete task", catch_response=True) as r:
            if r.status_code != 200 or '"COMPLETED"' not in r.text:
                r.failure(f"status {r.status_code}: {r.text[:100]}")

    @task(1)
    def list_processes(self):
        with self.client.get("/api/v1/processes", name="list processes",
                             catch_response=True) as r:
            if r.status_code != 200 or '"items"' not in r.text:
                r.failure(f"status {r.status_code}")
