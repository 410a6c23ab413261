"""Open a .qgs in headless QGIS (Debian's python3-qgis) and print what QGIS made of it, as JSON.

Run by tests/test_qgis.py with /usr/bin/python3 (the venv cannot import qgis):
    QT_QPA_PLATFORM=offscreen /usr/bin/python3 open_project.py PROJECT.qgs [LAYER_ID SUBSET]
Without a subset: the project CRS and, per layer, validity, provider, feature count (as QGIS
reports it and as read), CRS and geometry type. With LAYER_ID and SUBSET (a QGIS expression): that
layer's features under the subset string, read as a user's filter would (the test looks on the
server for what QGIS asked).
"""
import json
import sys

from qgis.core import Qgis, QgsApplication, QgsProject, QgsWkbTypes

app = QgsApplication([], False)
app.initQgis()
messages: list[str] = []
QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: messages.append(f"{tag}: {text}"))
project = QgsProject.instance()
report = {"qgis": Qgis.QGIS_VERSION, "read": project.read(sys.argv[1]), "crs": project.crs().authid()}
if len(sys.argv) == 4:
    layer = project.mapLayer(sys.argv[2])
    report["subset_accepted"] = layer.setSubsetString(sys.argv[3])
    report["subset_features"] = sorted(f["code"] for f in layer.getFeatures())
else:
    report["layers"] = {
        layer_id: {"valid": layer.isValid(), "provider": layer.providerType(), "count": layer.featureCount(),
                   "features": sum(1 for _ in layer.getFeatures()), "crs": layer.crs().authid(),
                   "wkb_type": QgsWkbTypes.displayString(layer.wkbType())}
        for layer_id, layer in project.mapLayers().items()}
report["messages"] = messages
print(json.dumps(report, ensure_ascii=False))
app.exitQgis()
