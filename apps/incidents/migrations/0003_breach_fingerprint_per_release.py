"""Breach incidents are per release now, no longer per release and criterion.

Unresolved breach incidents still carry the old fingerprint ("breach:release-3:criterion-7"), so
the next breach of their release would open yet another incident beside them. The oldest
unresolved one of each release takes the new fingerprint ("breach:release-3") and later breaches
join it; any others (the duplicates this change stops making) keep theirs until someone resolves
them. Going back leaves the fingerprints as they are: the old code simply opens new ones.
"""

import re

from django.db import migrations

OLD = re.compile(r"^breach:release-(\d+):criterion-\d+$")
UNRESOLVED = ["open", "acknowledged", "mitigated"]


def per_release(apps, schema_editor) -> None:
    Incident = apps.get_model("incidents", "Incident")
    unresolved = Incident.objects.filter(status__in=UNRESOLVED, fingerprint__startswith="breach:")
    taken = {
        (i.service_id, i.fingerprint)
        for i in unresolved.only("service_id", "fingerprint")
        if not OLD.match(i.fingerprint)
    }
    for incident in unresolved.order_by("opened_at", "pk"):
        match = OLD.match(incident.fingerprint)
        if match is None:
            continue
        new = f"breach:release-{match.group(1)}"
        if (incident.service_id, new) in taken:
            continue
        taken.add((incident.service_id, new))
        Incident.objects.filter(pk=incident.pk).update(fingerprint=new)


class Migration(migrations.Migration):
    dependencies = [("incidents", "0002_roles")]

    operations = [migrations.RunPython(per_release, migrations.RunPython.noop)]
