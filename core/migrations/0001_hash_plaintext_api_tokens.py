from django.db import migrations


def hash_plaintext_tokens(apps, schema_editor):
    """API tokens used to be DRF's authtoken rows, stored in plaintext. Each becomes a knox token (only its SHA-512
    digest is kept, so it keeps working), then the plaintext table is dropped."""
    from knox.crypto import hash_token

    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id FROM authtoken_token")
        rows = cursor.fetchall()
    AuthToken.objects.bulk_create(
        [AuthToken(digest=hash_token(key), token_key=key[:15], user_id=user_id, expiry=None) for key, user_id in rows]
    )
    schema_editor.execute("DROP TABLE authtoken_token")


class Migration(migrations.Migration):
    dependencies = [
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(hash_plaintext_tokens, migrations.RunPython.noop, elidable=True)]
