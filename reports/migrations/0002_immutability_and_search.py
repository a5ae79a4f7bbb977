"""PostgreSQL-only: signed text is immutable in the database itself, and report search is indexed.

* reports_reportversion, reports_signature, reports_addendum, reports_reportrelease: row-level
  BEFORE UPDATE/DELETE triggers raise (insert-only evidence, like audit/migrations/0002).
* reports_report: once a report is final/amended its text columns, status history
  (signed_by/signed_at) and verification code cannot change, it cannot go back to
  draft/preliminary, and it cannot be deleted.
* pg_trgm GIN index on reports_report.search_text so ``LIKE '%肺结节%'`` inside a sentence
  is answered from the index (trigram search works for CJK text and for English).
"""

from django.db import migrations

IMMUTABLE_TABLES = ["reports_reportversion", "reports_signature", "reports_addendum", "reports_reportrelease"]

CREATE_FN = """
CREATE OR REPLACE FUNCTION reports_forbid_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'signed report records are immutable (%% on %% refused)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION reports_report_guard_final() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status IN ('final', 'amended') THEN
            RAISE EXCEPTION 'a signed report cannot be deleted' USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status IN ('final', 'amended') AND (
        NEW.status NOT IN ('final', 'amended')
        OR NEW.findings IS DISTINCT FROM OLD.findings
        OR NEW.impression IS DISTINCT FROM OLD.impression
        OR NEW.signed_by_id IS DISTINCT FROM OLD.signed_by_id
        OR NEW.signed_at IS DISTINCT FROM OLD.signed_at
        OR NEW.author_id IS DISTINCT FROM OLD.author_id
        OR NEW.requested_procedure_id IS DISTINCT FROM OLD.requested_procedure_id
        OR NEW.verification_code IS DISTINCT FROM OLD.verification_code
    ) THEN
        RAISE EXCEPTION 'a signed report is immutable; write an addendum'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FN)
    for table in IMMUTABLE_TABLES:
        schema_editor.execute(
            f"DROP TRIGGER IF EXISTS {table}_immutable ON {table};"
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION reports_forbid_change();"
        )
    schema_editor.execute(
        "DROP TRIGGER IF EXISTS reports_report_final_guard ON reports_report;"
        "CREATE TRIGGER reports_report_final_guard BEFORE UPDATE OR DELETE ON reports_report "
        "FOR EACH ROW EXECUTE FUNCTION reports_report_guard_final();"
    )
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm;")
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS reports_report_search_trgm ON reports_report "
        "USING gin (search_text gin_trgm_ops);"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS reports_report_search_trgm;")
    schema_editor.execute("DROP TRIGGER IF EXISTS reports_report_final_guard ON reports_report;")
    for table in IMMUTABLE_TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table};")
    schema_editor.execute("DROP FUNCTION IF EXISTS reports_forbid_change();")
    schema_editor.execute("DROP FUNCTION IF EXISTS reports_report_guard_final();")


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
