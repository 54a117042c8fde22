from starlette.testclient import TestClient

from app import create_app


def test_health_answers_ok() -> None:
    with TestClient(create_app()) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "ok"
