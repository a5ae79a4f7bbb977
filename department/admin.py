from django.contrib import admin

from .models import MaterialItem, MaterialReceipt, MaterialUsage


@admin.register(MaterialItem)
class MaterialItemAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "unit", "stock_level", "low_stock_threshold", "active")
    list_filter = ("kind", "active")
    search_fields = ("code", "name")
    # Stock moves only through receipts and usages (services), never by editing the number.
    readonly_fields = ("stock_level",)


@admin.register(MaterialUsage)
class MaterialUsageAdmin(admin.ModelAdmin):
    list_display = ("at", "item", "quantity", "procedure_id", "source", "source_ae")
    list_filter = ("source", "item__kind")
    raw_id_fields = ("procedure", "item", "actor")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MaterialReceipt)
class MaterialReceiptAdmin(admin.ModelAdmin):
    list_display = ("at", "item", "quantity", "lot_number", "expiry_date", "supplier")
    raw_id_fields = ("item", "actor")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
