"""Open .qgs projects in headless QGIS (Debian's python3-qgis), each signed in through a Basic
authcfg, and print what QGIS made of them, as JSON.

Run by tests/test_qgis.py with /usr/bin/python3 (the venv cannot import qgis):
    QT_QPA_PLATFORM=offscreen QGIS_AUTH_DB_DIR_PATH=DIR QIWANG_QGIS_MASTER_PASSWORD=... \
        /usr/bin/python3 open_project.py RUNS.json
RUNS.json is a list of runs, read in order in one QGIS session: {"label", "project", "authcfg",
"username", "password", "subset"}. For each run an authentication configuration of method Basic
with that id, name and password is stored in QGIS's authentication database (in DIR, opened with
the master password), and the project, whose layers name it (`authcfg='<id>'` in their data
sources), is read. Without a subset the report holds the project CRS and, per layer, validity,
provider, feature count (as QGIS reports it and as read), CRS and geometry type. With a subset
[LAYER_ID, SUBSET] (a QGIS expression): that layer's features under the subset string, read as a
user's filter would (the test looks on the server for what QGIS asked).
"""
import json
import os
import sys

from qgis.core import Qgis, QgsApplication, QgsAuthMethodConfig, QgsProject, QgsWkbTypes

app = QgsApplication([], False)
app.initQgis()
messages: list[str] = []
QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: messages.append(f"{tag}: {text}"))

auth = QgsApplication.authManager()
assert not auth.isDisabled(), auth.disabledMessage()
# A new authentication database stores the first master password it is given; verify it thereafter.
assert auth.setMasterPassword(os.environ["QIWANG_QGIS_MASTER_PASSWORD"], True), "master password refused"

with open(sys.argv[1], encoding="utf-8") as f:
    runs = json.load(f)

out: dict = {"qgis": Qgis.QGIS_VERSION, "runs": {}}
project = QgsProject.instance()
for run in runs:
    config = QgsAuthMethodConfig("Basic")
    config.setId(run["authcfg"])
    config.setName(run["label"])
    config.setConfig("username", run["username"])
    config.setConfig("password", run["password"])
    assert auth.storeAuthenticationConfig(config) and config.isValid(), run["label"]

    messages.clear()
    project.clear()
    report: dict = {"read": project.read(run["project"]), "crs": project.crs().authid()}
    if run["subset"]:
        layer_id, subset = run["subset"]
        layer = project.mapLayer(layer_id)
        report["subset_accepted"] = layer.setSubsetString(subset)
        report["subset_features"] = sorted(f["code"] for f in layer.getFeatures())
    else:
        report["layers"] = {
            layer_id: {"valid": layer.isValid(), "provider": layer.providerType(), "count": layer.featureCount(),
                       "features": sum(1 for _ in layer.getFeatures()), "crs": layer.crs().authid(),
                       "wkb_type": QgsWkbTypes.displayString(layer.wkbType())}
            for layer_id, layer in project.mapLayers().items()}
    report["messages"] = list(messages)
    out["runs"][run["label"]] = report

project.clear()
print(json.dumps(out, ensure_ascii=False))
app.exitQgis()
